"""Operators' API (``/admin/v1``): the same provisioning as the CLI, behind an admin token."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from civio.callbacks.schemas import CallbackEventList, CallbackStatus
from civio.callbacks.service import CallbackPolicy, recent_events
from civio.core.problems import Problem, problem_responses
from civio.core.runtime import failure_throttle, get_runtime, session_dependency
from civio.services import manage_service, owners, service
from civio.services.gateway import get_gateway
from civio.services.manage_schemas import (
    CmsServiceLifecycle,
    OwnerCreate,
    OwnerWithManageKeys,
    ReviewDecision,
)
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
    runtime = get_runtime(request)
    configured = runtime.settings.admin_token
    if not configured:
        raise Problem(401, "Unauthorized", "The admin API is disabled: set CIVIO_ADMIN_TOKEN.")
    throttle = failure_throttle(runtime, __name__)
    client = f"client:{get_gateway(request).client_ip(request)}"
    throttle.check(client)
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(configured.encode()).digest()
    ):
        if given:
            throttle.failed(client)
        raise Problem(401, "Unauthorized", "Missing or wrong admin token.")


router = APIRouter(
    prefix="/services",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=problem_responses(400, 401, 404, 429),
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
    """Create a service; its two keys (and callback secret) are shown in this response only."""
    runtime = get_runtime(request)
    return await service.create_service(
        session,
        payload,
        sandbox_fiscal_code=runtime.settings.sandbox_fiscal_code,
        callback_policy=CallbackPolicy.of(runtime),
        keyring=runtime.keyring,
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
    runtime = get_runtime(request)
    return await service.update_service(
        session,
        service_id,
        payload,
        sandbox_fiscal_code=runtime.settings.sandbox_fiscal_code,
        callback_policy=CallbackPolicy.of(runtime),
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
    request: Request, service_id: str, which: Literal["primary", "secondary"], session: Session
) -> ServiceWithSubscriptionKeys:
    return await service.regenerate_key(
        session, service_id, which, keyring=get_runtime(request).keyring
    )


@router.put(
    "/{service_id}/callback-secret",
    response_model=ServiceWithSubscriptionKeys,
    response_model_exclude_none=True,
    responses=problem_responses(409),
)
async def regenerate_callback_secret(
    request: Request, service_id: str, session: Session
) -> ServiceWithSubscriptionKeys:
    """Replace the callback signing secret; the new one is shown in this response only."""
    return await service.regenerate_callback_secret(
        session, service_id, CallbackPolicy.of(get_runtime(request))
    )


@router.get(
    "/{service_id}/callbacks", response_model=CallbackEventList, response_model_exclude_none=True
)
async def list_callbacks(
    service_id: str,
    session: Session,
    status: CallbackStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> CallbackEventList:
    """The service's most recent callback events, newest first, with their outcome."""
    await service.get_service(session, service_id)
    return await recent_events(session, service_id, status=status, limit=limit)


def _platform(request: Request) -> manage_service.Platform:
    return manage_service.Platform.of(get_runtime(request))


@router.post(
    "/{service_id}/approve",
    response_model=CmsServiceLifecycle,
    response_model_exclude_none=True,
    responses=problem_responses(409),
)
async def approve_service(
    request: Request, service_id: str, session: Session, decision: ReviewDecision | None = None
) -> CmsServiceLifecycle:
    """Approve a submitted service: it is released (published if its owner asked for
    ``auto_publish``), its payment maximum set to CIVIO_MAX_ALLOWED_PAYMENT_AMOUNT."""
    return await manage_service.decide(
        session,
        service_id,
        "approve",
        _platform(request),
        reason=decision.reason if decision else None,
    )


@router.post(
    "/{service_id}/reject",
    response_model=CmsServiceLifecycle,
    response_model_exclude_none=True,
    responses=problem_responses(409),
)
async def reject_service(
    request: Request, service_id: str, session: Session, decision: ReviewDecision | None = None
) -> CmsServiceLifecycle:
    """Reject a submitted service; the reason is shown to its owner (status and history)."""
    return await manage_service.decide(
        session,
        service_id,
        "reject",
        _platform(request),
        reason=decision.reason if decision else None,
    )


owners_router = APIRouter(
    prefix="/owners",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=problem_responses(400, 401, 404, 409, 429),
)


@owners_router.post(
    "", status_code=201, response_model=OwnerWithManageKeys, response_model_exclude_none=True
)
async def create_owner(payload: OwnerCreate, session: Session) -> OwnerWithManageKeys:
    """An owner and its two manage keys, shown in this response only (``civio owner create``)."""
    return await owners.create_owner(session, payload.email)


@owners_router.put(
    "/{owner_id}/keys/{which}",
    response_model=OwnerWithManageKeys,
    response_model_exclude_none=True,
)
async def regenerate_manage_key(
    owner_id: str, which: Literal["primary", "secondary"], session: Session
) -> OwnerWithManageKeys:
    """Replace one manage key; the other keeps working."""
    return await owners.regenerate_key(session, owner_id, which)
