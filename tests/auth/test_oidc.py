"""Citizen login over OpenID Connect, against a real certified provider (oidc-provider).

Each test drives the whole authorization-code flow with PKCE: civio's /login, the
provider's sign-in and consent pages, civio's callback, then the session civio opened.
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import func, select, update
from structlog.testing import capture_logs

from civio.auth.models import CitizenSession, LoginAttempt
from civio.auth.oidc import OidcClient
from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.keys import decrypt_for
from civio.core.runtime import Runtime
from civio.profiles.models import Profile
from civio.profiles.service import email_aad
from tests.auth.conftest import CALLBACK_URL, OidcProvider, sign_in_at_provider
from tests.e2e.conftest import free_port
from tests.factories import client_with, random_fiscal_code
from tests.messages.test_submit import assert_problem

LOGIN = "/api/auth/v1/login"
CALLBACK = "/api/auth/v1/login/callback"


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def failure_code(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith("/error.html?"), location
    return query(location)["errorCode"]


def session_token(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith("/profile.html#token="), location
    return location.split("#token=", 1)[1]


async def start(civio: httpx.AsyncClient, **params: str) -> str:
    """civio's /login: the authorization URL it redirects the browser to."""
    response = await civio.get(LOGIN, params={"entityID": "civio-test-idp", **params})
    assert response.status_code == 302, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.headers["location"]


async def attempt(runtime: Runtime, state: str) -> LoginAttempt | None:
    async with runtime.sessions() as session:
        return await session.get(LoginAttempt, state)


async def test_code_flow_with_pkce_opens_a_session_and_creates_the_profile(
    civio: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    runtime: Runtime,
    oidc_provider: OidcProvider,
) -> None:
    fc = random_fiscal_code()
    authorization_url = await start(civio, entityID="xx_servizicie")
    assert authorization_url.startswith(oidc_provider.issuer + "/")
    params = query(authorization_url)
    assert params["response_type"] == "code"
    assert params["client_id"] == oidc_provider.client_id
    assert params["redirect_uri"] == CALLBACK_URL
    assert set(params["scope"].split()) == {"openid", "profile", "email"}
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert "fiscal_number" in params["claims"]
    pending = await attempt(runtime, params["state"])
    assert pending is not None
    assert pending.nonce == params["nonce"]
    assert pending.code_verifier not in authorization_url

    callback_url = await sign_in_at_provider(browser, authorization_url, fc)
    assert set(query(callback_url)) >= {"code", "state", "iss"}
    with capture_logs() as logs:
        response = await civio.get(callback_url)
    token = session_token(response)
    assert len(token) == 96
    assert response.headers["cache-control"] == "no-store"
    assert await attempt(runtime, params["state"]) is None

    bearer = {"Authorization": f"Bearer {token}"}
    state = await civio.get("/api/auth/v1/session", headers=bearer)
    assert state.status_code == 200, state.text
    assert state.json()["spidLevel"] == "https://www.spid.gov.it/SpidL2"
    identity = await civio.get("/api/auth/v1/user-identity", headers=bearer)
    assert identity.status_code == 200, identity.text
    body = identity.json()
    assert body["fiscal_code"] == fc
    assert (body["name"], body["family_name"]) == ("Maria", "Rossi")
    assert body["date_of_birth"] == "1980-01-31"
    assert body["spid_email"] == f"{fc.lower()}@example.org"
    assert body["spid_idp"] == oidc_provider.issuer
    assert body["spid_level"] == "https://www.spid.gov.it/SpidL2"

    async with runtime.sessions() as session:
        profile = await session.get(Profile, fc)
        assert profile is not None
        assert profile.is_inbox_enabled is False
        assert profile.is_webhook_enabled is False
        assert profile.is_email_validated is False
        assert profile.email_ciphertext is not None
        assert fc.lower().encode() not in profile.email_ciphertext
        email = await decrypt_for(
            session, runtime.keyring, fc, profile.email_ciphertext, email_aad(fc)
        )
    assert email.decode() == f"{fc.lower()}@example.org"

    text = repr(logs)
    assert "auth.oidc.login" in text
    for secret in (fc, fc.lower(), token, query(callback_url)["code"]):
        assert secret not in text


async def test_the_requested_spid_level_is_asked_for_and_asserted(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    fc = random_fiscal_code()
    authorization_url = await start(civio, authLevel="SpidL3")
    assert query(authorization_url)["acr_values"] == "https://www.spid.gov.it/SpidL3"
    # The provider's fiscal_number is TINIT-<login>: a lower-case login checks upper-casing.
    callback_url = await sign_in_at_provider(browser, authorization_url, fc.lower())
    token = session_token(await civio.get(callback_url))
    bearer = {"Authorization": f"Bearer {token}"}
    state = await civio.get("/api/auth/v1/session", headers=bearer)
    assert state.json()["spidLevel"] == "https://www.spid.gov.it/SpidL3"
    identity = await civio.get("/api/auth/v1/user-identity", headers=bearer)
    assert identity.json()["fiscal_code"] == fc


async def test_a_forged_state_is_refused_and_spends_nothing(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    authorization_url = await start(civio)
    callback_url = await sign_in_at_provider(browser, authorization_url, random_fiscal_code())
    params = query(callback_url)
    forged = await civio.get(CALLBACK, params={**params, "state": "forged-" + params["state"]})
    assert failure_code(forged) == "STATE_INVALID"
    missing = await civio.get(CALLBACK, params={"code": params["code"]})
    assert failure_code(missing) == "STATE_INVALID"
    # The genuine callback still works: a forged one did not consume it.
    session_token(await civio.get(callback_url))


async def test_a_replayed_callback_is_refused(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient, runtime: Runtime
) -> None:
    fc = random_fiscal_code()
    authorization_url = await start(civio)
    callback_url = await sign_in_at_provider(browser, authorization_url, fc)
    session_token(await civio.get(callback_url))
    assert failure_code(await civio.get(callback_url)) == "STATE_INVALID"
    async with runtime.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(CitizenSession).where(CitizenSession.fiscal_code == fc)
        )
    assert count == 1


async def test_a_replayed_code_is_refused_by_the_provider(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Even with its state put back, a used code gets ``invalid_grant`` from the provider,
    which civio reports as a failed login, not as a server error."""
    authorization_url = await start(civio)
    state = query(authorization_url)["state"]
    pending = await attempt(runtime, state)
    assert pending is not None
    callback_url = await sign_in_at_provider(browser, authorization_url, random_fiscal_code())
    session_token(await civio.get(callback_url))
    async with transaction(runtime.sessions) as session:
        session.add(
            LoginAttempt(state=state, nonce=pending.nonce, code_verifier=pending.code_verifier)
        )
    with capture_logs() as logs:
        replay = await civio.get(callback_url)
    assert failure_code(replay) == "TOKEN_REFUSED"
    assert any("invalid_grant" in str(entry.get("reason")) for entry in logs)


async def test_an_id_token_with_another_nonce_is_refused(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient, runtime: Runtime
) -> None:
    fc = random_fiscal_code()
    authorization_url = await start(civio)
    state = query(authorization_url)["state"]
    callback_url = await sign_in_at_provider(browser, authorization_url, fc)
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(LoginAttempt).where(LoginAttempt.state == state).values(nonce="another-nonce")
        )
    assert failure_code(await civio.get(callback_url)) == "ID_TOKEN_INVALID"
    async with runtime.sessions() as session:
        assert await session.get(Profile, fc) is None


async def _provider_kid(browser: httpx.AsyncClient, issuer: str) -> str:
    jwks = (await browser.get(f"{issuer}/jwks")).json()
    return str(jwks["keys"][0]["kid"])


async def test_an_id_token_that_does_not_verify_against_the_jwks_is_refused(
    civio: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    oidc_app: FastAPI,
    oidc_provider: OidcProvider,
) -> None:
    """The cached JWKS holds another key under the provider's ``kid``: the signature check
    fails, exactly as for a token an attacker signed or altered."""
    authorization_url = await start(civio)
    client: OidcClient = oidc_app.state.oidc_client
    kid = await _provider_kid(browser, oidc_provider.issuer)
    impostor = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})
    client._keys = (time.monotonic(), KeySet([impostor]))
    callback_url = await sign_in_at_provider(browser, authorization_url, random_fiscal_code())
    assert failure_code(await civio.get(callback_url)) == "ID_TOKEN_INVALID"


async def test_an_unknown_kid_refreshes_the_cached_jwks(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient, oidc_app: FastAPI
) -> None:
    """A provider that rotated its keys since they were cached is not locked out."""
    authorization_url = await start(civio)
    client: OidcClient = oidc_app.state.oidc_client
    stale = RSAKey.generate_key(2048, parameters={"kid": "rotated-away", "alg": "RS256"})
    client._keys = (time.monotonic(), KeySet([stale]))
    callback_url = await sign_in_at_provider(browser, authorization_url, random_fiscal_code())
    session_token(await civio.get(callback_url))


async def test_a_provider_error_is_a_failure_and_spends_the_state(
    civio: httpx.AsyncClient, runtime: Runtime
) -> None:
    state = query(await start(civio))["state"]
    denied = await civio.get(CALLBACK, params={"error": "access_denied", "state": state})
    assert failure_code(denied) == "PROVIDER_ERROR"
    assert await attempt(runtime, state) is None


async def test_a_response_naming_another_issuer_is_refused(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    callback_url = await sign_in_at_provider(browser, await start(civio), random_fiscal_code())
    params = query(callback_url)
    mixed_up = await civio.get(CALLBACK, params={**params, "iss": "https://idp.example.org"})
    assert failure_code(mixed_up) == "PROVIDER_ERROR"


async def test_an_identity_without_a_valid_fiscal_number_is_refused(
    civio: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    callback_url = await sign_in_at_provider(browser, await start(civio), "not-a-fiscal-code")
    assert failure_code(await civio.get(callback_url)) == "IDENTITY_INVALID"


async def test_an_expired_attempt_is_refused_and_purged(
    civio: httpx.AsyncClient, runtime: Runtime
) -> None:
    state = query(await start(civio))["state"]
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.state == state)
            .values(created_at=func.now() - timedelta(minutes=11))
        )
    expired = await civio.get(CALLBACK, params={"code": "x", "state": state})
    assert failure_code(expired) == "STATE_INVALID"

    old = query(await start(civio))["state"]
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.state == old)
            .values(created_at=func.now() - timedelta(minutes=11))
        )
    await start(civio)
    assert await attempt(runtime, old) is None


async def test_a_bad_auth_level_is_400(civio: httpx.AsyncClient) -> None:
    response = await civio.get(LOGIN, params={"entityID": "x", "authLevel": "SpidL9"})
    assert_problem(response, 400, "Invalid authLevel")


async def test_login_without_entity_id_is_400(civio: httpx.AsyncClient) -> None:
    assert_problem(await civio.get(LOGIN), 400, "Invalid entityID")


async def test_login_without_a_provider_is_503(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(LOGIN, params={"entityID": "x"}), 503, "Login not configured")
    callback = await client.get(CALLBACK, params={"code": "x", "state": "y"})
    assert_problem(callback, 503, "Login not configured")


async def test_an_unreachable_provider_is_503_at_login(
    oidc_settings: Settings, runtime: Runtime
) -> None:
    down = oidc_settings.model_copy(update={"oidc_issuer": f"http://127.0.0.1:{free_port()}"})
    async with client_with(down, runtime) as c:
        assert_problem(await c.get(LOGIN, params={"entityID": "x"}), 503, "Login not available")


@pytest.mark.parametrize("path", [LOGIN, CALLBACK])
async def test_the_login_operations_are_in_the_auth_surface_openapi(
    civio: httpx.AsyncClient, path: str
) -> None:
    document = (await civio.get("/api/auth/v1/openapi.json")).json()
    assert path.removeprefix("/api/auth/v1") in document["paths"]
