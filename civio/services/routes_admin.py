"""Operators' API (``/admin/v1``): the same provisioning as the CLI, behind an admin token."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.problems import Problem, problem_responses
from civio.core.runtime import get_runtime, session_dependency
from civio.services import service
from civio.services.schemas import (
    GroupsPayload,
    ServiceCreate,
    ServiceUpdate,
    ServiceWithSubscriptionKeys,
)

bearer = HTTPBearer(auto_error=False)


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    configured = get_runtime(request).settings.admin_token
    if not configured:
        raise Problem(401, "Unauthorized", "The admin API is disabled: set CIVIO_ADMIN_TOKEN.")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(configured.encode()).digest()
    ):
        raise Problem(401, "Unauthorized", "Missing or wrong admin token.")


router = APIRouter(
    prefix="/services",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=problem_responses(400, 401, 404),
)
Session = Annotated[AsyncSession, Depends(session_dependency)]


@router.post(
    "",
    status_code=201,
    response_model=ServiceWithSubscriptionKeys,
    response_model_exclude_none=True,
)
async def create_service(
    request: Request, payload: ServiceCreate, session: Session
) -> ServiceWithSubscriptionKeys:
    """Create a service; its two keys are shown in this response only."""
    return await service.create_service(
        session, payload, sandbox_fiscal_code=get_runtime(request).settings.sandbox_fiscal_code
    )


@router.get(
    "/{service_id}", response_model=ServiceWithSubscriptionKeys, response_model_exclude_none=True
)
async def show_service(service_id: str, session: Session) -> ServiceWithSubscriptionKeys:
    row, owner = await service.get_service(session, service_id)
    return service.to_io(row, owner.email)


@router.patch(
    "/{service_id}", response_model=ServiceWithSubscriptionKeys, response_model_exclude_none=True
)
async def update_service(
    request: Request, service_id: str, payload: ServiceUpdate, session: Session
) -> ServiceWithSubscriptionKeys:
    return await service.update_service(
        session,
        service_id,
        payload,
        sandbox_fiscal_code=get_runtime(request).settings.sandbox_fiscal_code,
    )


@router.post(
    "/{service_id}/groups",
    response_model=ServiceWithSubscriptionKeys,
    response_model_exclude_none=True,
)
async def grant_groups(
    service_id: str, payload: GroupsPayload, session: Session
) -> ServiceWithSubscriptionKeys:
    return await service.change_groups(session, service_id, payload.groups, grant=True)


@router.delete(
    "/{service_id}/groups",
    response_model=ServiceWithSubscriptionKeys,
    response_model_exclude_none=True,
)
async def revoke_groups(
    service_id: str, payload: GroupsPayload, session: Session
) -> ServiceWithSubscriptionKeys:
    return await service.change_groups(session, service_id, payload.groups, grant=False)


@router.put(
    "/{service_id}/keys/{which}",
    response_model=ServiceWithSubscriptionKeys,
    response_model_exclude_none=True,
)
async def regenerate_key(
    service_id: str, which: Literal["primary", "secondary"], session: Session
) -> ServiceWithSubscriptionKeys:
    return await service.regenerate_key(session, service_id, which)
