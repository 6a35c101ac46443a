"""``/api/auth/v1/login`` and its callback: IO's login entry point, over OpenID Connect.

IO's app opens ``/login`` in a browser and takes the session token from the fragment of the
page the browser lands on (``profile.html#token=…``); civio keeps that contract with an
OpenID provider where IO has SPID SAML. The callback always answers with a redirect, since
its reader is a browser: a failed login lands on the failure page with an ``errorCode``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from civio.auth.oidc import (
    AUTH_LEVELS,
    LoginFailed,
    LoginUnavailable,
    OidcClient,
    consume_attempt,
    identity_from_claims,
    merge_userinfo,
    needs_userinfo,
    spid_level,
    start_attempt,
)
from civio.auth.service import open_session
from civio.core.problems import Problem, problem_responses
from civio.core.runtime import Runtime, get_runtime

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/auth/v1", tags=["auth"])

AuthLevel = Literal["SpidL1", "SpidL2", "SpidL3"]
# The URL carries the authorization code: it must not be cached nor leak as a Referer.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
REDIRECT_302: dict[int | str, dict[str, Any]] = {
    302: {"description": "Redirect (see the operation's description)."}
}
_OAUTH_ERROR = re.compile(r"[^a-z_]")


def _not_configured() -> Problem:
    return Problem(
        503,
        "Login not configured",
        "Set CIVIO_OIDC_ISSUER and CIVIO_OIDC_CLIENT_ID to enable citizen login.",
    )


def _unavailable() -> Problem:
    return Problem(503, "Login not available", "The identity provider cannot be reached.")


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


def _client(request: Request, runtime: Runtime) -> OidcClient:
    """The app's provider client, kept on the app so its discovery and JWKS caches live as
    long as the app does; rebuilt if the settings name another provider."""
    client: OidcClient | None = getattr(request.app.state, "oidc_client", None)
    if client is None or not client.matches(runtime.settings):
        client = OidcClient(runtime.settings)
        request.app.state.oidc_client = client
    return client


@router.get(
    "/login",
    operation_id="login",
    status_code=302,
    response_class=RedirectResponse,
    responses={**REDIRECT_302, **problem_responses(400, 503)},
)
async def login(
    request: Request,
    entity_id: Annotated[str, Query(alias="entityID", min_length=1, max_length=200)],
    auth_level: Annotated[AuthLevel | None, Query(alias="authLevel")] = None,
) -> RedirectResponse:
    """Start a login: 302 to the OpenID provider's authorization endpoint.

    ``authLevel`` asks for a SPID level (``acr_values``); the session gets the level the
    provider asserts, and a lower one than asked fails the login. ``entityID`` (IO's choice
    among SPID identity providers) is required, as in IO, and otherwise ignored: civio has one
    OpenID provider.
    """
    runtime = get_runtime(request)
    if not OidcClient.configured(runtime.settings):
        raise _not_configured()
    client = _client(request, runtime)
    async with client.http() as http:
        try:
            metadata = await client.metadata(http)
        except LoginUnavailable as exc:
            log.error("auth.oidc.provider_unavailable", reason=str(exc))
            raise _unavailable() from exc
    async with runtime.sessions() as session, session.begin():
        state, nonce, code_verifier = await start_attempt(session, auth_level)
    url = client.authorization_url(
        metadata,
        state=state,
        nonce=nonce,
        code_verifier=code_verifier,
        acr=AUTH_LEVELS[auth_level] if auth_level else None,
    )
    return _redirect(url)


@router.get(
    "/login/callback",
    operation_id="loginCallback",
    status_code=302,
    response_class=RedirectResponse,
    responses={**REDIRECT_302, **problem_responses(503)},
)
async def login_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    iss: Annotated[str | None, Query(max_length=2048)] = None,
) -> RedirectResponse:
    """The provider's redirect back: 302 to ``login_success_url#token=<session token>``, or
    to ``login_failure_url?errorCode=<reason>`` (``STATE_INVALID`` for an unknown, used or
    expired state, ``TOKEN_REFUSED`` when the provider refuses the code, ``ID_TOKEN_INVALID``,
    ``IDENTITY_INVALID``, ``AUTH_LEVEL_TOO_LOW``, ``PROVIDER_ERROR``, …)."""
    runtime = get_runtime(request)
    settings = runtime.settings
    if not OidcClient.configured(settings):
        raise _not_configured()
    client = _client(request, runtime)
    try:
        token = await _complete_login(runtime, client, code=code, state=state, error=error, iss=iss)
    except LoginFailed as exc:
        log.warning("auth.oidc.login_failed", error_code=exc.code, reason=exc.reason)
        return _redirect(_failure_url(settings.login_failure_url, exc.code))
    except LoginUnavailable as exc:
        log.error("auth.oidc.provider_unavailable", reason=str(exc))
        return _redirect(_failure_url(settings.login_failure_url, "PROVIDER_UNAVAILABLE"))
    return _redirect(f"{settings.login_success_url}#token={token}")


def _failure_url(base: str, code: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}{urlencode({'errorCode': code})}"


async def _complete_login(
    runtime: Runtime,
    client: OidcClient,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    iss: str | None,
) -> str:
    if not state:
        raise LoginFailed("STATE_INVALID", "no state")
    # Committed before anything else: the state is spent even if the login then fails.
    async with runtime.sessions() as session, session.begin():
        pending = await consume_attempt(session, state)
    if error is not None:
        raise LoginFailed("PROVIDER_ERROR", f"provider error {_OAUTH_ERROR.sub('', error)[:64]}")
    if not code:
        raise LoginFailed("PROVIDER_ERROR", "no code")
    async with client.http() as http:
        metadata = await client.metadata(http)
        # RFC 9207: the response names its issuer, so a mixed-up response is refused.
        if (iss is not None or metadata.iss_parameter_supported) and iss != metadata.issuer:
            raise LoginFailed("PROVIDER_ERROR", "the response names another issuer")
        tokens = await client.exchange_code(http, metadata, code, pending.code_verifier)
        claims = await client.verify_id_token(
            http,
            metadata,
            tokens["id_token"],
            nonce=pending.nonce,
            access_token=tokens["access_token"],
        )
        level = spid_level(claims.get("acr"), pending.requested_level)
        if needs_userinfo(claims) and metadata.userinfo_endpoint:
            userinfo = await client.userinfo(http, metadata, tokens["access_token"])
            claims = merge_userinfo(claims, userinfo)
    identity = identity_from_claims(claims)
    async with runtime.sessions() as session, session.begin():
        token = await open_session(
            session,
            runtime.keyring,
            identity,
            spid_level=level,
            identity_provider=metadata.issuer,
            ttl_seconds=runtime.settings.session_ttl_seconds,
        )
    log.info("auth.oidc.login", fc=runtime.keyring.log_ref(identity.fiscal_code), spid_level=level)
    return token
