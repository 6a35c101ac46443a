"""Input at the edges of what civio can store or send: a 400 problem at the door, never a 500
later, and never a fiscal code in the log on the way."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from civio.core.config import Settings
from tests.factories import ADMIN, Factory, login, random_fiscal_code, valid_message
from tests.messages.test_submit import assert_problem

MARKDOWN = "Your residence permit is ready for pickup at the registry office. Bring an ID card."
# The UTC instant is outside the years a datetime can hold: 10000-01-01 and 0000-12-31.
EDGE_TIMESTAMPS = ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"]
BIDI = ["\u202a", "\u202e", "\u2066", "\u2069"]
CONTROLS = ["\x00", "\x07", "\x1b", "\r", "\n", "\x7f", "\x85"]


def payment(**fields: Any) -> dict[str, Any]:
    return {"amount": 100, "notice_number": "012345678901234567", **fields}


# --- timestamps at the calendar's edges --------------------------------------------------------


@pytest.mark.parametrize("value", EDGE_TIMESTAMPS)
async def test_due_date_beyond_the_calendar_is_400(
    client: httpx.AsyncClient, factory: Factory, value: str
) -> None:
    sender = await factory.sender()
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(due_date=value),
        headers=sender.headers,
    )
    assert_problem(response, 400, "Invalid message structure")
    assert "root.content.due_date" in response.json()["detail"]


@pytest.mark.parametrize("value", EDGE_TIMESTAMPS)
async def test_third_party_receipt_date_beyond_the_calendar_is_400(
    client: httpx.AsyncClient, factory: Factory, value: str
) -> None:
    sender = await factory.sender(groups=["ApiMessageWrite", "ApiThirdPartyMessageWrite"])
    third_party = {"id": "abc-123", "original_receipt_date": value}
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(third_party_data=third_party),
        headers=sender.headers,
    )
    assert_problem(response, 400, "Invalid message structure")


async def test_the_last_day_of_the_calendar_is_not_a_feed_yet(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    response = await client.get("/api/v1/subscriptions-feed/9999-12-31", headers=sender.headers)
    assert_problem(response, 404, "Data not available yet")


async def test_a_timestamp_still_inside_the_calendar_is_accepted(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(due_date="9999-12-31T18:00:00-05:00"),
        headers=sender.headers,
    )
    assert response.status_code == 201, response.text


# --- NUL bytes: PostgreSQL text cannot hold them ------------------------------------------------


async def test_nul_in_a_path_id_is_400_and_the_log_has_no_fiscal_code(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fiscal_code = await factory.citizen()
    with capture_logs() as logs:
        response = await client.get(
            f"/api/v1/messages/{fiscal_code}/01ARZ3NDEKTSV4RRFFQ69G5FAV%00",
            headers=sender.headers,
        )
    assert_problem(response, 400, "Invalid id")
    assert "root.id" in response.json()["detail"]
    assert fiscal_code not in repr(logs)


@pytest.mark.parametrize(
    "path",
    [
        "/api/catalog/v1/services/abc%00def",
        "/admin/v1/services/abc%00def",
        "/api/catalog/v1/services?search=abc%00",
    ],
)
async def test_nul_in_a_path_or_query_is_400(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path, headers=ADMIN), 400)


async def test_nul_in_a_citizen_query_is_400(client: httpx.AsyncClient, settings: Settings) -> None:
    _, headers = await login(client, settings)
    response = await client.get("/api/communication/v1/messages?q=permit%00", headers=headers)
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "content",
    [
        {"subject": "Your permit\u0000 is ready"},
        {"markdown": MARKDOWN + "\u0000"},
        {"legal_data": {"sender_mail_from": "a\u0000b", "message_unique_id": "x"}},
    ],
)
async def test_nul_in_a_message_field_is_400(
    client: httpx.AsyncClient, factory: Factory, content: dict[str, Any]
) -> None:
    sender = await factory.sender(groups=["ApiMessageWrite", "ApiMessageWriteAdvanced"])
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(**content),
        headers=sender.headers,
    )
    assert_problem(response, 400, "Invalid message structure")


async def test_nul_in_an_admin_body_is_400_and_not_logged(client: httpx.AsyncClient) -> None:
    body = {
        "name": "Tributi",
        "organization_name": "Comune di Prova",
        "organization_fiscal_code": "12345678901",
        "department_name": "Ufficio\u0000tributi",
        "service_metadata": {"note": "x\u0000y"},
    }
    with capture_logs() as logs:
        response = await client.post("/admin/v1/services", json=body, headers=ADMIN)
    assert_problem(response, 400)
    assert not [entry for entry in logs if entry.get("log_level") == "error"]


async def test_nul_in_extra_service_metadata_is_400(client: httpx.AsyncClient) -> None:
    body = {
        "name": "Tributi",
        "organization_name": "Comune di Prova",
        "organization_fiscal_code": "12345678901",
        "service_metadata": {"note": ["x\u0000y"]},
    }
    response = await client.post("/admin/v1/services", json=body, headers=ADMIN)
    assert_problem(response, 400)


async def test_a_lone_surrogate_in_a_body_is_400(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    body = json.dumps(valid_message(markdown=MARKDOWN + "\ud800"))
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        content=body,
        headers={**sender.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "Invalid message structure")


async def test_nul_in_a_test_login_name_is_400(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.post(
        "/api/auth/v1/test-login",
        json={
            "username": random_fiscal_code(),
            "password": settings.test_login_password,
            "name": "Ma\u0000rio",
        },
    )
    assert_problem(response, 400, "Invalid PasswordLogin")


# --- control and bidi characters ----------------------------------------------------------------


@pytest.mark.parametrize("char", CONTROLS)
async def test_a_control_character_in_the_subject_is_400(
    client: httpx.AsyncClient, factory: Factory, char: str
) -> None:
    sender = await factory.sender()
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(subject=f"Your permit{char}is ready"),
        headers=sender.headers,
    )
    assert_problem(response, 400, "Invalid message structure")
    assert "root.content.subject" in response.json()["detail"]


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\x0b", "\x7f"])
async def test_a_control_character_in_the_markdown_is_400(
    client: httpx.AsyncClient, factory: Factory, char: str
) -> None:
    sender = await factory.sender()
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(markdown=MARKDOWN + char),
        headers=sender.headers,
    )
    assert_problem(response, 400, "Invalid message structure")


async def test_markdown_keeps_newlines_and_tabs_and_non_latin_text(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    markdown = "# Avviso\r\n\n\t- " + MARKDOWN + " مرحبا \u200f שלום"
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(subject="Avviso: مرحبا", markdown=markdown),
        headers=sender.headers,
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("char", [*BIDI, "\x07", "\x1b"])
async def test_bidi_or_control_characters_in_the_profile_email_are_400(
    client: httpx.AsyncClient, settings: Settings, char: str
) -> None:
    _, headers = await login(client, settings)
    profile = (await client.get("/api/identity/v1/profile", headers=headers)).json()
    response = await client.post(
        "/api/identity/v1/profile",
        json={"version": profile["version"], "email": f"mario{char}moc.evil@example.org"},
        headers=headers,
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("field", ["name", "family_name", "email"])
@pytest.mark.parametrize("char", ["\u202e", "\x1b"])
async def test_bidi_or_control_characters_in_login_identity_are_400(
    client: httpx.AsyncClient, settings: Settings, field: str, char: str
) -> None:
    value = f"ma{char}rio@example.org" if field == "email" else f"Ma{char}rio"
    response = await client.post(
        "/api/auth/v1/test-login",
        json={
            "username": random_fiscal_code(),
            "password": settings.test_login_password,
            field: value,
        },
    )
    assert_problem(response, 400, "Invalid PasswordLogin")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Tributi\u202e"),
        ("organization_name", "Comune\x1bdi Prova"),
        ("department_name", "Ufficio\u2066tributi"),
        ("owner_email", "owner\u202e@example.org"),
        ("owner_email", "owner\x07@example.org"),
    ],
)
async def test_bidi_or_control_characters_in_admin_names_are_400(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    body = {
        "name": "Tributi",
        "organization_name": "Comune di Prova",
        "organization_fiscal_code": "12345678901",
        field: value,
    }
    response = await client.post("/admin/v1/services", json=body, headers=ADMIN)
    assert_problem(response, 400)
    plain = "owner@example.org" if field == "owner_email" else "Plain name"
    created = await client.post("/admin/v1/services", json={**body, field: plain}, headers=ADMIN)
    assert created.status_code == 201, created.text
    service_id = created.json()["service_id"]
    updated = await client.patch(
        f"/admin/v1/services/{service_id}", json={field: value}, headers=ADMIN
    )
    assert_problem(updated, 400)


# --- non-finite numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_a_non_finite_tos_version_is_400(
    client: httpx.AsyncClient, settings: Settings, number: str
) -> None:
    _, headers = await login(client, settings)
    profile = (await client.get("/api/identity/v1/profile", headers=headers)).json()
    response = await client.post(
        "/api/identity/v1/profile",
        content=f'{{"version": {profile["version"]}, "accepted_tos_version": {number}}}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)


@pytest.mark.parametrize("number", ["NaN", "Infinity"])
async def test_a_non_finite_amount_is_400(
    client: httpx.AsyncClient, factory: Factory, number: str
) -> None:
    sender = await factory.sender(max_amount=1000)
    body = json.dumps(valid_message(payment_data=payment())).replace(
        '"amount": 100', f'"amount": {number}'
    )
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        content=body,
        headers={**sender.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "Invalid message structure")


async def test_a_non_finite_number_in_service_metadata_is_400(client: httpx.AsyncClient) -> None:
    body = (
        '{"name": "Tributi", "organization_name": "Comune di Prova", '
        '"organization_fiscal_code": "12345678901", "service_metadata": {"weight": NaN}}'
    )
    response = await client.post(
        "/admin/v1/services",
        content=body,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_problem(response, 400)


# --- what reaches the log when something does fail -----------------------------------------------


async def test_a_database_error_names_the_sql_but_not_its_parameters(settings: Settings) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from civio.core.db import database_url, make_engine

    fiscal_code = random_fiscal_code()
    engine = make_engine(database_url(settings), pool_size=1)
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as failure:
                await connection.execute(
                    text("SELECT CAST(:fc AS text), 1 / 0"), {"fc": fiscal_code}
                )
    finally:
        await engine.dispose()
    assert "1 / 0" in str(failure.value)
    assert fiscal_code not in str(failure.value)


async def test_an_unexpected_error_is_logged_with_its_place_but_no_personal_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fastapi import FastAPI

    from civio.core.logging import configure_logging
    from civio.core.problems import handle_unexpected

    fiscal_code = random_fiscal_code()
    app = FastAPI()
    app.add_exception_handler(Exception, handle_unexpected)

    @app.get("/boom")
    async def boom() -> None:
        raise LookupError(f"no row for {fiscal_code}")

    configure_logging("INFO", json=True, cache=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://civio.test") as c:
        response = await c.get("/boom")
    assert_problem(response, 500, "Internal server error")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    logged = capsys.readouterr().err
    entry = json.loads(logged.strip().splitlines()[-1])
    assert entry["event"] == "http.unhandled"
    assert entry["error"] == "LookupError"
    assert "in boom" in entry["traceback"]
    assert "LookupError: no row for <fiscal code>" in entry["traceback"]
    assert fiscal_code not in logged


def test_an_identity_providers_names_lose_control_and_bidi_characters() -> None:
    from civio.auth.oidc import identity_from_claims

    identity = identity_from_claims(
        {
            "sub": "subject-1",
            "fiscal_number": "TINIT-RSSMRA80A01H501U",
            "given_name": "Ma\u202erio\x1b",
            "family_name": "Ro\u2066ssi",
            "email": "mario\u202e@example.org",
        }
    )
    assert (identity.name, identity.family_name) == ("Mario", "Rossi")
    assert identity.spid_email is None
