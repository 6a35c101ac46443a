"""Sessions: test login, session state, logout, identity (io-citizen-api.md §7, 1-2)."""

from __future__ import annotations

import re

import httpx

from civio.core.config import Environment, Settings
from civio.core.runtime import Runtime
from tests.factories import client_with, login, random_fiscal_code


async def test_test_login_returns_a_96_hex_token_that_opens_the_session(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    fc = random_fiscal_code()
    response = await client.post(
        "/api/auth/v1/test-login",
        json={"username": fc, "password": settings.test_login_password},
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert re.fullmatch(r"[0-9a-f]{96}", token)
    session = await client.get("/api/auth/v1/session", headers={"Authorization": f"Bearer {token}"})
    assert session.status_code == 200
    assert session.json()["spidLevel"] == "https://www.spid.gov.it/SpidL2"
    assert session.json()["expirationDate"].endswith("Z")


async def test_wrong_password_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/v1/test-login",
        json={"username": random_fiscal_code(), "password": "not-the-password"},
    )
    assert response.status_code == 401


async def test_test_login_validates_the_body(client: httpx.AsyncClient, settings: Settings) -> None:
    for body in (
        {"username": "rssmra80a01h501u", "password": settings.test_login_password},
        {"username": random_fiscal_code()},
        {"username": random_fiscal_code(), "password": ""},
    ):
        response = await client.post("/api/auth/v1/test-login", json=body)
        assert response.status_code == 400, body


async def test_test_login_does_not_exist_in_production(
    settings: Settings, runtime: Runtime
) -> None:
    production = settings.model_copy(update={"env": Environment.production})
    async with client_with(production, runtime) as client:
        response = await client.post(
            "/api/auth/v1/test-login",
            json={"username": random_fiscal_code(), "password": settings.test_login_password},
        )
    assert response.status_code == 404


async def test_missing_unknown_or_logged_out_token_is_a_bare_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get("/api/auth/v1/session")).status_code == 401
    unknown = await client.get(
        "/api/auth/v1/session", headers={"Authorization": "Bearer " + "0" * 96}
    )
    assert unknown.status_code == 401
    assert unknown.content == b""
    _, headers = await login(client, settings)
    assert (await client.get("/api/identity/v1/profile", headers=headers)).status_code == 200
    logout = await client.post("/api/auth/v1/logout", headers=headers)
    assert logout.json() == {"message": "ok"}
    assert (await client.get("/api/auth/v1/session", headers=headers)).status_code == 401
    assert (await client.get("/api/identity/v1/profile", headers=headers)).status_code == 401


async def test_expired_token_is_401(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    from sqlalchemy import update

    from civio.auth.models import CitizenSession
    from civio.auth.service import hash_token
    from civio.core.db import transaction

    _, headers = await login(client, settings)
    token = headers["Authorization"].removeprefix("Bearer ")
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(CitizenSession)
            .where(CitizenSession.token_hash == hash_token(token))
            .values(expires_at=CitizenSession.created_at)
        )
    assert (await client.get("/api/auth/v1/session", headers=headers)).status_code == 401


async def test_session_fields_filter(client: httpx.AsyncClient, settings: Settings) -> None:
    _, headers = await login(client, settings)
    only = await client.get("/api/auth/v1/session?fields=(spidLevel)", headers=headers)
    assert only.json() == {"spidLevel": "https://www.spid.gov.it/SpidL2"}
    bad = await client.get("/api/auth/v1/session?fields=spidLevel", headers=headers)
    assert bad.status_code == 400


async def test_user_identity_introspects_the_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    fc, headers = await login(client, settings, name="Anna", family_name="Bianchi")
    identity = (await client.get("/api/auth/v1/user-identity", headers=headers)).json()
    assert identity["fiscal_code"] == fc
    assert identity["name"] == "Anna"
    assert identity["family_name"] == "Bianchi"
    assert identity["spid_level"] == "https://www.spid.gov.it/SpidL2"
    assert 0 < identity["token_remaining_ttl"] <= settings.session_ttl_seconds


async def test_raw_session_table_holds_neither_token_nor_names(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    from sqlalchemy import text

    _, headers = await login(client, settings, name="Zebedeo", family_name="Quaglierini")
    token = headers["Authorization"].removeprefix("Bearer ")
    async with runtime.engine.connect() as connection:
        dump = "\n".join(
            row[0]
            for row in await connection.execute(text("SELECT t::text FROM citizen_sessions t"))
        )
    assert token not in dump
    assert "Zebedeo" not in dump
    assert "Quaglierini" not in dump
