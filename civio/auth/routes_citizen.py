"""``/api/auth/v1``: IO's session manager shapes (test-login, session, logout, identity)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from civio.auth.dependencies import UNAUTHORIZED, Citizen
from civio.auth.dev_login import dev_login_password
from civio.auth.schemas import (
    AccessToken,
    Identity,
    PasswordLogin,
    PublicSession,
    SuccessResponse,
    UserIdentityWithTtl,
)
from civio.auth.service import close_session, open_session
from civio.core.problems import Problem, problem_responses
from civio.core.runtime import failure_throttle, get_runtime
from civio.core.types import format_timestamp
from civio.notifications.push.installations import unbind_session
from civio.services.gateway import get_gateway

router = APIRouter(prefix="/api/auth/v1", tags=["auth"])
TEST_IDP = "civio-test-login"


@router.post(
    "/test-login",
    operation_id="testLogin",
    response_model=AccessToken,
    responses={
        **problem_responses(400, 404, 429),
        401: {"description": "Wrong password."},
    },
    openapi_extra={"x-civio-body-title": "Invalid PasswordLogin"},
)
async def test_login(request: Request, payload: PasswordLogin) -> AccessToken:
    """Password login for development and tests; it does not exist in production."""
    runtime = get_runtime(request)
    settings = runtime.settings
    if not settings.is_dev:
        raise Problem(404, "Not Found", "Test login is available only in dev mode.")
    throttle = failure_throttle(runtime, __name__)
    attempt = (f"client:{get_gateway(request).client_ip(request)}", f"user:{payload.username}")
    throttle.check(*attempt)
    expected = dev_login_password(settings).value
    if not hmac.compare_digest(payload.password.encode(), expected.encode()):
        throttle.failed(*attempt)
        raise Problem(401, "Unauthorized", "Wrong test-login password.")
    identity = Identity(
        fiscal_code=payload.username,
        name=payload.name or "Test",
        family_name=payload.family_name or "User",
        spid_email=payload.email,
    )
    async with runtime.sessions() as session, session.begin():
        token = await open_session(
            session,
            runtime.keyring,
            identity,
            spid_level="https://www.spid.gov.it/SpidL2",
            identity_provider=TEST_IDP,
            ttl_seconds=settings.session_ttl_seconds,
        )
    return AccessToken(token=token)


@router.get(
    "/session",
    operation_id="getSessionState",
    response_model=PublicSession,
    response_model_exclude_none=True,
    responses={**problem_responses(400), **UNAUTHORIZED},
)
async def get_session_state(
    citizen: Citizen,
    fields: Annotated[str | None, Query(pattern=r"^\(([A-Za-z]+(,[A-Za-z]+)*)?\)$")] = None,
) -> PublicSession:
    """The current session; ``fields=(a,b)`` keeps only the named fields."""
    data = {
        "spidLevel": citizen.spid_level,
        "expirationDate": format_timestamp(citizen.expires_at),
    }
    if fields is not None:
        wanted = set(fields.strip("()").split(",")) if fields != "()" else set()
        data = {k: v for k, v in data.items() if k in wanted}
    return PublicSession(**data)


@router.post(
    "/logout",
    operation_id="logout",
    response_model=SuccessResponse,
    responses=UNAUTHORIZED,
)
async def logout(request: Request, citizen: Citizen) -> SuccessResponse:
    """End the session: the token stops working at once."""
    async with get_runtime(request).sessions() as session, session.begin():
        await close_session(session, citizen.token_hash)
        await unbind_session(session, citizen.token_hash)
    return SuccessResponse(message="ok")


@router.get(
    "/user-identity",
    operation_id="getUserIdentity",
    response_model=UserIdentityWithTtl,
    response_model_exclude_none=True,
    responses=UNAUTHORIZED,
)
async def get_user_identity(citizen: Citizen) -> UserIdentityWithTtl:
    """Token introspection: who this session belongs to and how long it has left."""
    now = datetime.now(UTC)
    identity = citizen.identity
    return UserIdentityWithTtl(
        fiscal_code=citizen.fiscal_code,
        name=identity.name,
        family_name=identity.family_name,
        date_of_birth=identity.date_of_birth or "",
        spid_level=citizen.spid_level,
        spid_email=identity.spid_email,
        spid_idp=citizen.identity_provider,
        created_at=citizen.created_at.timestamp(),
        token_remaining_ttl=max(0, int((citizen.expires_at - now).total_seconds())),
    )
