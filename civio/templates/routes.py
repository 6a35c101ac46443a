"""PA API: a service's message templates (``/api/v1/templates``), beyond IO.

Authenticated by the service key like ``/api/v1/messages``: a template is written by the
services that send messages, and each sees only its own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.problems import problem_responses
from civio.core.runtime import session_dependency
from civio.services.gateway import Caller, check_cidr, require_groups
from civio.templates import service
from civio.templates.schemas import (
    Preview,
    PreviewRequest,
    TemplateDraft,
    TemplateList,
    TemplateOut,
    TemplateVersionList,
)

router = APIRouter(tags=["templates"])

Session = Annotated[AsyncSession, Depends(session_dependency)]
Sender = Annotated[Caller, Depends(require_groups("ApiMessageWrite", "ApiLimitedMessageWrite"))]
TemplateId = Annotated[str, Path(min_length=1, max_length=64)]
BODY = {"x-civio-body-title": "Invalid template"}


def _service_id(caller: Caller) -> str:
    check_cidr(caller)
    return caller.service.service_id


@router.post(
    "/templates",
    operation_id="createTemplate",
    status_code=201,
    response_model=TemplateOut,
    responses=problem_responses(400, 401, 403, 409, 413, 429),
    openapi_extra=BODY,
)
async def create_template(draft: TemplateDraft, caller: Sender, session: Session) -> TemplateOut:
    """Save a new template (version 1)."""
    return await service.create_template(session, _service_id(caller), draft)


@router.get(
    "/templates",
    operation_id="listTemplates",
    response_model=TemplateList,
    responses=problem_responses(400, 401, 403, 429),
)
async def list_templates(
    caller: Sender,
    session: Session,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2_147_483_647)] = 0,
) -> TemplateList:
    """The calling service's templates, oldest first."""
    return await service.list_templates(session, _service_id(caller), limit=limit, offset=offset)


@router.get(
    "/templates/{template_id}",
    operation_id="getTemplate",
    response_model=TemplateOut,
    responses=problem_responses(401, 403, 404, 429),
)
async def get_template(template_id: TemplateId, caller: Sender, session: Session) -> TemplateOut:
    """The template as its latest version holds it."""
    return await service.get_template(session, _service_id(caller), template_id)


@router.put(
    "/templates/{template_id}",
    operation_id="updateTemplate",
    response_model=TemplateOut,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 429),
    openapi_extra=BODY,
)
async def update_template(
    template_id: TemplateId, draft: TemplateDraft, caller: Sender, session: Session
) -> TemplateOut:
    """Save the draft as the template's next version."""
    return await service.update_template(session, _service_id(caller), template_id, draft)


@router.get(
    "/templates/{template_id}/versions",
    operation_id="listTemplateVersions",
    response_model=TemplateVersionList,
    responses=problem_responses(401, 403, 404, 429),
)
async def list_template_versions(
    template_id: TemplateId, caller: Sender, session: Session
) -> TemplateVersionList:
    """Every version of the template, first to latest."""
    return await service.list_versions(session, _service_id(caller), template_id)


@router.post(
    "/templates/{template_id}/preview",
    operation_id="previewTemplate",
    response_model=Preview,
    responses=problem_responses(400, 401, 403, 404, 429),
    openapi_extra={"x-civio-body-title": "Invalid personalisation"},
)
async def preview_template(
    template_id: TemplateId, body: PreviewRequest, caller: Sender, session: Session
) -> Preview:
    """Every language rendered, with the given values or with samples; nothing is stored."""
    return await service.preview(
        session, _service_id(caller), template_id, body.version, body.personalisation
    )
