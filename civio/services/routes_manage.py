"""``/api/v1/manage/…``: IO's services management API (its CMS), for an owner's manage key.

The key travels in ``Ocp-Apim-Subscription-Key`` like a service key but is looked up among
manage keys only (``owners``): an unknown key is 401; a service key is 403 ``You are not
allowed here``, as IO answers a subscription that is not a ``MANAGE-`` one. A manage key
counts against its owner's rate limit like the owner's service keys. The rules are in
``manage_service``; these handlers parse, authenticate and delegate.

Two choices where IO's gateway decides by APIM groups and products: holding a manage key is
the permission (IO also wants the key's user in ``ApiServiceWrite``; civio's owners have no
groups, the operator grants the key itself), and the topic list takes the manage key like
the rest of this surface, where IO accepts any subscription key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.problems import forbidden, problem_responses
from civio.core.runtime import get_runtime, session_dependency
from civio.services import manage_service, owners, topics
from civio.services.gateway import KEY_HEADER, enforce_rate_limit, get_gateway, unauthorized
from civio.services.manage_schemas import (
    CmsReviewRequest,
    CmsServiceHistory,
    CmsServiceLifecycle,
    CmsServicePagination,
    CmsServicePayload,
    CmsServicePublication,
    CmsServiceTopicList,
    CmsSubscriptionKeys,
)
from civio.services.schemas import Logo

Session = Annotated[AsyncSession, Depends(session_dependency)]


@dataclass(frozen=True)
class ManageCaller:
    owner_id: str


async def require_manage_key(
    request: Request, response: Response, session: Session
) -> ManageCaller:
    key = request.headers.get(KEY_HEADER)
    if not key:
        raise unauthorized(
            "Access denied due to missing subscription key. Make sure to include "
            f"the {KEY_HEADER} header when making requests."
        )
    owner_id = await owners.owner_of_manage_key(session, key)
    if owner_id is None:
        if await owners.is_service_key(session, key):
            raise forbidden()
        raise unauthorized("Access denied due to invalid subscription key.")
    await enforce_rate_limit(
        get_gateway(request), owner_id, get_runtime(request).settings.rate_limit_calls, response
    )
    return ManageCaller(owner_id)


Caller = Annotated[ManageCaller, Depends(require_manage_key)]
ServiceId = Annotated[str, Path(alias="serviceId", min_length=1, description="The service id.")]

router = APIRouter(
    prefix="/manage",
    tags=["manage"],
    dependencies=[Depends(require_manage_key)],
    responses=problem_responses(401, 403, 429),
)


def _platform(request: Request) -> manage_service.Platform:
    return manage_service.Platform.of(get_runtime(request))


def _titles(body: str | None = None, *query: str) -> dict[str, Any]:
    """IO's problem titles: ``Invalid <Type>`` for a body, and its optional-query-parameter
    middleware's wording for a bad query parameter."""
    extra: dict[str, Any] = {}
    if query:
        extra["x-civio-param-titles"] = {
            name: f"Invalid '{name}' supplied in request query" for name in query
        }
    if body is not None:
        extra["x-civio-body-title"] = body
    return extra


NO_CONTENT: dict[int | str, dict[str, Any]] = {204: {"description": "Done."}}


@router.post(
    "/services",
    operation_id="cmsCreateService",
    status_code=201,
    response_model=CmsServiceLifecycle,
    response_model_exclude_none=True,
    responses=problem_responses(400),
    openapi_extra=_titles("Invalid CmsServicePayload"),
)
async def create_service(
    request: Request, payload: CmsServicePayload, caller: Caller, session: Session
) -> CmsServiceLifecycle:
    """A new service in ``draft``; its keys are at ``GET …/keys``."""
    return await manage_service.create(session, caller.owner_id, payload, _platform(request))


@router.get(
    "/services",
    operation_id="cmsGetServices",
    response_model=CmsServicePagination,
    response_model_exclude_none=True,
    responses=problem_responses(400),
    openapi_extra=_titles(None, "limit", "offset"),
)
async def list_services(
    caller: Caller,
    session: Session,
    # IO validates with an exclusive upper bound: 100 is refused although documented.
    limit: Annotated[int, Query(ge=1, le=99, description="1..99 (IO refuses 100).")] = 20,
    # IO sets no upper bound; this one only keeps the value inside PostgreSQL's OFFSET.
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> CmsServicePagination:
    """The owner's services (deleted ones aside) with their lifecycle status."""
    return await manage_service.list_services(session, caller.owner_id, limit=limit, offset=offset)


async def _topics() -> CmsServiceTopicList:
    return topics.topic_list()


router.add_api_route(
    "/services/topics",
    _topics,
    methods=["GET"],
    operation_id="getServiceTopics",
    response_model=CmsServiceTopicList,
    summary="IO's service topics",
)
router.add_api_route(
    "/topics",
    _topics,
    methods=["GET"],
    operation_id="getTopics",
    response_model=CmsServiceTopicList,
    summary="IO's service topics (the same list, at civio's shorter path)",
)


@router.get(
    "/services/{serviceId}",
    operation_id="cmsGetService",
    response_model=CmsServiceLifecycle,
    response_model_exclude_none=True,
    responses=problem_responses(404),
)
async def get_service(
    service_id: ServiceId, caller: Caller, session: Session
) -> CmsServiceLifecycle:
    return await manage_service.get(session, caller.owner_id, service_id)


@router.put(
    "/services/{serviceId}",
    operation_id="cmsUpdateService",
    response_model=CmsServiceLifecycle,
    response_model_exclude_none=True,
    responses=problem_responses(400, 404, 409),
    openapi_extra=_titles("Invalid CmsServicePayload"),
)
async def update_service(
    request: Request,
    service_id: ServiceId,
    payload: CmsServicePayload,
    caller: Caller,
    session: Session,
) -> CmsServiceLifecycle:
    """A new working copy, back to ``draft``; a released version stays live meanwhile."""
    return await manage_service.update(
        session, caller.owner_id, service_id, payload, _platform(request)
    )


@router.delete(
    "/services/{serviceId}",
    operation_id="cmsDeleteService",
    status_code=204,
    response_class=Response,
    responses={**NO_CONTENT, **problem_responses(404, 409)},
)
async def delete_service(service_id: ServiceId, caller: Caller, session: Session) -> Response:
    await manage_service.delete(session, caller.owner_id, service_id)
    return Response(status_code=204)


@router.put(
    "/services/{serviceId}/logo",
    operation_id="cmsUpdateServiceLogo",
    status_code=204,
    response_class=Response,
    responses={**NO_CONTENT, **problem_responses(400, 404)},
    openapi_extra=_titles("Invalid Logo"),
)
async def upload_logo(
    service_id: ServiceId, logo: Logo, caller: Caller, session: Session
) -> Response:
    """A base64 PNG; stored scaled down to fit 300x300 pixels."""
    await manage_service.set_logo(session, caller.owner_id, service_id, logo.logo)
    return Response(status_code=204)


@router.get(
    "/services/{serviceId}/history",
    operation_id="cmsGetServiceHistory",
    response_model=CmsServiceHistory,
    response_model_exclude_none=True,
    responses=problem_responses(400, 404),
    openapi_extra=_titles(None, "order", "limit", "continuationToken"),
)
async def service_history(
    service_id: ServiceId,
    caller: Caller,
    session: Session,
    order: Literal["ASC", "DESC"] = "DESC",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    continuation_token: Annotated[str | None, Query(alias="continuationToken")] = None,
) -> CmsServiceHistory:
    """Lifecycle and publication changes, newest first unless ``order=ASC``."""
    return await manage_service.history(
        session,
        caller.owner_id,
        service_id,
        order=order,
        limit=limit,
        continuation_token=continuation_token,
    )


@router.get(
    "/services/{serviceId}/keys",
    operation_id="cmsGetServiceKeys",
    response_model=CmsSubscriptionKeys,
    responses=problem_responses(404, 409),
)
async def service_keys(
    request: Request, service_id: ServiceId, caller: Caller, session: Session
) -> CmsSubscriptionKeys:
    return await manage_service.keys(
        session, caller.owner_id, service_id, get_runtime(request).keyring
    )


@router.put(
    "/services/{serviceId}/keys/{keyType}",
    operation_id="cmsRegenerateServiceKey",
    response_model=CmsSubscriptionKeys,
    responses=problem_responses(400, 404),
)
async def regenerate_service_key(
    request: Request,
    service_id: ServiceId,
    key_type: Annotated[Literal["primary", "secondary"], Path(alias="keyType")],
    caller: Caller,
    session: Session,
) -> CmsSubscriptionKeys:
    """A new key of that type; the other keeps working."""
    return await manage_service.regenerate_key(
        session, caller.owner_id, service_id, key_type, get_runtime(request).keyring
    )


@router.put(
    "/services/{serviceId}/review",
    operation_id="cmsReviewService",
    status_code=204,
    response_class=Response,
    responses={**NO_CONTENT, **problem_responses(400, 404, 409)},
    openapi_extra=_titles("Invalid CmsReviewRequest"),
)
async def review_service(
    service_id: ServiceId, review: CmsReviewRequest, caller: Caller, session: Session
) -> Response:
    """``draft`` → ``submitted``; an operator approves or rejects it."""
    await manage_service.submit(
        session, caller.owner_id, service_id, auto_publish=review.auto_publish
    )
    return Response(status_code=204)


@router.post(
    "/services/{serviceId}/release",
    operation_id="cmsReleaseService",
    status_code=204,
    response_class=Response,
    responses={**NO_CONTENT, **problem_responses(404, 409)},
)
async def publish_service(service_id: ServiceId, caller: Caller, session: Session) -> Response:
    """Publish the released version (404 if no version was ever approved)."""
    await manage_service.publish(session, caller.owner_id, service_id)
    return Response(status_code=204)


@router.get(
    "/services/{serviceId}/release",
    operation_id="cmsGetPublishedService",
    response_model=CmsServicePublication,
    response_model_exclude_none=True,
    responses=problem_responses(404),
)
async def published_service(
    service_id: ServiceId, caller: Caller, session: Session
) -> CmsServicePublication:
    return await manage_service.publication(session, caller.owner_id, service_id)


@router.delete(
    "/services/{serviceId}/release",
    operation_id="cmsUnpublishService",
    status_code=204,
    response_class=Response,
    responses={**NO_CONTENT, **problem_responses(404, 409)},
)
async def unpublish_service(service_id: ServiceId, caller: Caller, session: Session) -> Response:
    await manage_service.unpublish(session, caller.owner_id, service_id)
    return Response(status_code=204)


__all__ = ["router"]
