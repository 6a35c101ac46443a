"""Email validation end to end (io-citizen-api.md §1.3, §7 items 10-11): the citizen logs in
through test-login, starts the process, the real worker mails the link to a real SMTP server
(aiosmtpd), and the link is followed through the app."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.profiles.email_validation import (
    SEND_TASK,
    TOKEN_PATTERN,
    build_validation_email,
    send_validation_email_job,
    start_email_validation,
)
from civio.profiles.models import EmailValidationToken, Profile
from civio.profiles.service import set_email
from tests.factories import Factory, client_with, random_fiscal_code
from tests.smtp import SmtpServer, free_port, smtp_server

START = "/api/identity/v1/email-validation-process"
V2 = "/api/v2/validate-profile-email"
TOKEN_HEADER = "x-pagopa-email-validation-token"
LINK_RE = re.compile(r"(https?://\S+/validate-profile-email\?token=\S+)")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mail_runtime(runtime: Runtime, settings: Settings, smtp: SmtpServer) -> Runtime:
    """The shared runtime with settings that send through the test SMTP server; the
    worker built on it gives these settings to the job."""
    return dataclasses.replace(runtime, settings=settings.model_copy(update={"smtp_url": smtp.url}))


async def drain(runtime: Runtime) -> None:
    await Worker(runtime).run(drain=True)


async def login(
    client: httpx.AsyncClient,
    settings: Settings,
    *,
    email: str | None,
    name: str | None = "Mario",
) -> tuple[str, dict[str, str]]:
    fc = random_fiscal_code()
    body: dict[str, Any] = {"username": fc, "password": settings.test_login_password}
    if name is not None:
        body["name"] = name
    if email is not None:
        body["email"] = email
    response = await client.post("/api/auth/v1/test-login", json=body)
    assert response.status_code == 200, response.text
    return fc, {"Authorization": f"Bearer {response.json()['token']}"}


def new_address(fc: str) -> str:
    return f"{fc.lower()}.{datetime.now(UTC).timestamp():.0f}@example.org"


@dataclasses.dataclass
class Mailed:
    fc: str
    headers: dict[str, str]
    email: str
    message: EmailMessage
    link: str

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.link).query)["token"][0]

    @property
    def path(self) -> str:
        parts = urlsplit(self.link)
        return f"{parts.path}?{parts.query}"


def the_link(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = LINK_RE.search(body.get_content())
    assert match is not None
    return match.group(1)


def only_mail_to(smtp: SmtpServer, address: str) -> EmailMessage:
    messages = smtp.capture.to(address)
    assert len(messages) == 1, f"{len(messages)} mails to the citizen"
    return messages[0]


async def set_languages(runtime: Runtime, fc: str, languages: list[str]) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Profile).where(Profile.fiscal_code == fc).values(preferred_languages=languages)
        )


async def mailed(
    client: httpx.AsyncClient,
    settings: Settings,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    *,
    name: str | None = "Mario",
    languages: list[str] | None = None,
) -> Mailed:
    """A citizen who logged in with an address, started validation, and got the mail."""
    email = new_address(random_fiscal_code())
    fc, headers = await login(client, settings, email=email, name=name)
    if languages is not None:
        await set_languages(mail_runtime, fc, languages)
    response = await client.post(START, headers=headers)
    assert response.status_code == 202, response.text
    assert response.content == b""
    await drain(mail_runtime)
    message = only_mail_to(smtp, email)
    return Mailed(fc, headers, email, message, the_link(message))


async def profile_row(runtime: Runtime, fc: str) -> Profile:
    async with runtime.sessions() as session:
        profile = await session.get(Profile, fc)
        assert profile is not None
        return profile


async def token_rows(runtime: Runtime, fc: str) -> list[EmailValidationToken]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(EmailValidationToken).where(EmailValidationToken.fiscal_code == fc)
        )
        return list(rows)


async def expire(runtime: Runtime, token: str) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(EmailValidationToken)
            .where(EmailValidationToken.token_id == token.split(":")[0])
            .values(invalid_after=datetime.now(UTC) - timedelta(seconds=1))
        )


async def queued_payloads_in(session: AsyncSession, fc: str) -> list[bytes]:
    rows = await session.execute(
        text(
            "SELECT payload FROM pgqueuer WHERE entrypoint = :name "
            "AND position(convert_to(:fc, 'UTF8') in payload) > 0"
        ),
        {"name": SEND_TASK, "fc": fc},
    )
    return [bytes(row[0]) for row in rows]


async def queued_payloads(runtime: Runtime, fc: str) -> list[bytes]:
    async with runtime.sessions() as session:
        return await queued_payloads_in(session, fc)


def callback(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/email-validated.html?")
    return parse_qs(urlsplit(location).query)


def failure(response: httpx.Response) -> str:
    query = callback(response)
    assert query["result"] == ["failure"]
    return query["error"][0]


# --- the mail --------------------------------------------------------------------------------


async def test_the_mail_arrives_by_smtp_with_the_link(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    message = got.message
    assert message["Subject"] == "Conferma il tuo indirizzo email"
    assert message["To"] == got.email
    assert message["From"] == settings.mail_from
    assert message["Content-Language"] == "it"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().startswith("Ciao Mario,\n")
    assert "Ciao Mario," in html.get_content()
    assert "Procedi con la conferma" in html.get_content()
    # The link points at this server's public URL; the HTML has it as button and in clear.
    assert got.link.startswith(f"{settings.public_url}/validate-profile-email?token=")
    assert re.match(TOKEN_PATTERN, got.token)
    assert html.get_content().count(f'href="{got.link}"') == 2
    assert f">{got.link}</a>" in html.get_content()


@pytest.mark.parametrize(
    ("languages", "subject", "greeting", "lang"),
    [
        ([], "Conferma il tuo indirizzo email", "Ciao Mario,", "it"),
        (["it_IT", "en_GB"], "Conferma il tuo indirizzo email", "Ciao Mario,", "it"),
        (["en_GB"], "Confirm your email address", "Hi Mario,", "en"),
        (["de_DE", "it_IT"], "Bestätige deine E-Mail-Adresse", "Hallo Mario,", "de"),
        (["fr_FR", "de_DE"], "Bestätige deine E-Mail-Adresse", "Hallo Mario,", "de"),
        (["es_ES", "fr_FR"], "Conferma il tuo indirizzo email", "Ciao Mario,", "it"),
    ],
)
async def test_the_mail_speaks_the_first_supported_preferred_language(
    client: httpx.AsyncClient,
    settings: Settings,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    languages: list[str],
    subject: str,
    greeting: str,
    lang: str,
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp, languages=languages)
    assert got.message["Subject"] == subject
    assert got.message["Content-Language"] == lang
    plain = got.message.get_body(("plain",))
    html = got.message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().startswith(greeting)
    assert greeting in html.get_content()
    assert f'<html lang="{lang}">' in html.get_content()


def test_without_a_name_the_greeting_has_none(settings: Settings) -> None:
    message = build_validation_email(
        settings,
        email="mario@example.org",
        token="01DPT9QAZ6N0FJX21A86FRCWB3:8c652f8566ba53bd8cf0b1b9",
        name=None,
        preferred_languages=["en_GB"],
    )
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().startswith("Hi,\n")
    assert '<p style="margin:0 0 16px;">Hi,</p>' in html.get_content()


async def test_the_name_is_escaped_in_html(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp, name="<Ma & rio>")
    html = got.message.get_body(("html",))
    plain = got.message.get_body(("plain",))
    assert html is not None
    assert plain is not None
    assert "Ciao &lt;Ma &amp; rio&gt;," in html.get_content()
    assert plain.get_content().startswith("Ciao <Ma & rio>,")


async def test_with_no_smtp_url_the_worker_writes_the_mail_to_the_maildir(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    maildir = dataclasses.replace(
        runtime, settings=settings.model_copy(update={"smtp_url": "", "data_dir": tmp_path})
    )
    email = new_address(random_fiscal_code())
    _, headers = await login(client, settings, email=email)
    assert (await client.post(START, headers=headers)).status_code == 202
    await drain(maildir)
    files = list((tmp_path / "mail" / "new").iterdir())
    mails = [f.read_bytes() for f in files if email.encode() in f.read_bytes()]
    assert len(mails) == 1
    assert b"Subject: Conferma il tuo indirizzo email" in mails[0]


# --- following the link ------------------------------------------------------------------------


async def test_validate_flow_validates_the_email(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    before = await profile_row(mail_runtime, got.fc)
    assert before.is_email_validated is False

    response = await client.get(got.path + "&flow=VALIDATE")
    assert callback(response) == {"result": ["success"]}
    assert response.headers["cache-control"] == "no-store"

    profile = await client.get("/api/identity/v1/profile", headers=got.headers)
    assert profile.status_code == 200, profile.text
    assert profile.json()["is_email_validated"] is True
    assert profile.json()["email"] == got.email
    after = await profile_row(mail_runtime, got.fc)
    assert after.is_email_validated is True
    assert after.version == before.version + 1
    assert await token_rows(mail_runtime, got.fc) == []


async def test_the_link_works_once(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    assert callback(await client.get(got.path + "&flow=VALIDATE"))["result"] == ["success"]
    version = (await profile_row(mail_runtime, got.fc)).version
    assert failure(await client.get(got.path + "&flow=VALIDATE")) == "INVALID_TOKEN"
    assert failure(await client.get(got.path)) == "INVALID_TOKEN"
    assert (await profile_row(mail_runtime, got.fc)).version == version


async def test_confirm_is_the_default_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    for path in (got.path, got.path + "&flow=CONFIRM"):
        response = await client.get(path)
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith(settings.email_validation_confirm_url + "?token=")
        assert f"token={got.token}&" in location  # the token as it is, as IO writes it
        query = parse_qs(urlsplit(location).query)
        assert query["token"] == [got.token]
        encoded = query["email"][0]
        assert "=" not in encoded  # Node's base64url: no padding
        assert base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode() == got.email
    assert (await profile_row(mail_runtime, got.fc)).is_email_validated is False
    # The link still validates afterwards.
    assert callback(await client.get(got.path + "&flow=VALIDATE"))["result"] == ["success"]


async def test_an_expired_token_is_token_expired(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    await expire(mail_runtime, got.token)
    assert failure(await client.get(got.path)) == "TOKEN_EXPIRED"
    assert failure(await client.get(got.path + "&flow=VALIDATE")) == "TOKEN_EXPIRED"
    assert (await profile_row(mail_runtime, got.fc)).is_email_validated is False


async def test_the_token_lives_for_the_configured_ttl(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    [row] = await token_rows(mail_runtime, got.fc)
    expected = datetime.now(UTC) + timedelta(seconds=settings.email_validation_ttl_seconds)
    assert abs((row.invalid_after - expected).total_seconds()) < 60


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("0" if token[-1] != "0" else "1"),  # wrong validator
        lambda token: "01DPT9QAZ6N0FJX21A86FRCWB3:" + token.split(":")[1],  # unknown id
        lambda token: token + "0",  # malformed: validator too long
        lambda token: token.replace(":", "-"),  # malformed: no separator
        lambda token: "",
    ],
)
async def test_a_wrong_or_malformed_token_is_invalid_token(
    client: httpx.AsyncClient,
    settings: Settings,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    mangle: Any,
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    bad = mangle(got.token)
    for flow in ("CONFIRM", "VALIDATE"):
        response = await client.get("/validate-profile-email", params={"token": bad, "flow": flow})
        if bad == "":
            assert response.status_code == 400  # IO's middleware: the token is required
        else:
            assert failure(response) == "INVALID_TOKEN"
    assert (await profile_row(mail_runtime, got.fc)).is_email_validated is False


async def test_an_upper_case_validator_still_validates(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    response = await client.get(
        "/validate-profile-email", params={"token": got.token.upper(), "flow": "VALIDATE"}
    )
    assert callback(response)["result"] == ["success"]


async def test_an_unknown_flow_is_400(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    response = await client.get(got.path + "&flow=DELETE")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_address_validated_by_another_citizen_is_email_already_taken(
    client: httpx.AsyncClient,
    settings: Settings,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    factory: Factory,
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    # An operator-created citizen's address counts as validated.
    await factory.citizen(email=got.email.upper())
    assert failure(await client.get(got.path)) == "EMAIL_ALREADY_TAKEN"
    assert failure(await client.get(got.path + "&flow=VALIDATE")) == "EMAIL_ALREADY_TAKEN"
    assert (await profile_row(mail_runtime, got.fc)).is_email_validated is False


async def test_a_link_for_an_address_the_profile_no_longer_has_is_invalid_token(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    async with transaction(mail_runtime.sessions) as session:
        profile = await session.get(Profile, got.fc)
        assert profile is not None
        await set_email(session, mail_runtime.keyring, profile, "someone.else@example.org")
    assert failure(await client.get(got.path + "&flow=VALIDATE")) == "INVALID_TOKEN"
    assert (await profile_row(mail_runtime, got.fc)).is_email_validated is False


async def test_a_link_whose_profile_is_gone_is_generic_error(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    async with transaction(mail_runtime.sessions) as session:
        await session.execute(text("DELETE FROM profiles WHERE fiscal_code = :fc"), {"fc": got.fc})
    assert failure(await client.get(got.path + "&flow=VALIDATE")) == "GENERIC_ERROR"
    assert (await client.post(V2, json={"token": got.token})).status_code == 500


async def test_redirects_keep_a_query_already_in_the_configured_urls(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    mail_runtime: Runtime,
    smtp: SmtpServer,
) -> None:

    got = await mailed(client, settings, mail_runtime, smtp)
    custom = settings.model_copy(
        update={
            "email_validation_confirm_url": "https://io.example/confirm?lang=it",
            "email_validation_callback_url": "https://io.example/done",
        }
    )
    async with client_with(custom, runtime) as other:
        confirm = await other.get(got.path)
        assert confirm.headers["location"].startswith(
            f"https://io.example/confirm?lang=it&token={got.token}&email="
        )
        done = await other.get(got.path + "&flow=VALIDATE")
        assert done.headers["location"] == "https://io.example/done?result=success"


async def test_concurrent_clicks_validate_once(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    version = (await profile_row(mail_runtime, got.fc)).version
    responses = await asyncio.gather(
        *(client.get(got.path + "&flow=VALIDATE") for _ in range(4)),
        client.post(V2, json={"token": got.token}),
    )

    def outcome(response: httpx.Response) -> str:
        if response.status_code == 401:  # the v2 POST, late
            return "INVALID_TOKEN"
        if response.status_code == 200:  # the v2 POST, first
            return "success"
        return callback(response).get("error", ["success"])[0]

    outcomes = sorted(outcome(response) for response in responses)
    assert outcomes == ["INVALID_TOKEN"] * 4 + ["success"]
    assert (await profile_row(mail_runtime, got.fc)).version == version + 1


async def test_two_citizens_racing_for_one_address_cannot_both_win(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    email = new_address(random_fiscal_code())
    for _ in range(2):
        _, headers = await login(client, settings, email=email)
        assert (await client.post(START, headers=headers)).status_code == 202
    await drain(mail_runtime)
    links = [the_link(m) for m in smtp.capture.to(email)]
    assert len(links) == 2
    paths = [f"{urlsplit(link).path}?{urlsplit(link).query}&flow=VALIDATE" for link in links]
    results = await asyncio.gather(*(client.get(path) for path in paths))
    outcomes = sorted(callback(r).get("error", ["success"])[0] for r in results)
    assert outcomes == ["EMAIL_ALREADY_TAKEN", "success"]


# --- v2 JSON -------------------------------------------------------------------------------------


async def test_v2_get_returns_the_address_and_changes_nothing(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    response = await client.get(V2, headers={TOKEN_HEADER: got.token})
    assert response.status_code == 200
    assert response.json() == {"status": "SUCCESS", "profile_email": got.email}
    assert (await profile_row(mail_runtime, got.fc)).is_email_validated is False


async def test_v2_post_validates_once(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    response = await client.post(V2, json={"token": got.token})
    assert response.status_code == 200
    assert response.json() == {"status": "SUCCESS"}
    assert (await profile_row(mail_runtime, got.fc)).is_email_validated is True
    again = await client.post(V2, json={"token": got.token})
    assert again.status_code == 401
    assert again.json() == {"status": "FAILURE", "reason": "INVALID_TOKEN"}
    gone = await client.get(V2, headers={TOKEN_HEADER: got.token})
    assert gone.status_code == 401
    assert gone.json()["reason"] == "INVALID_TOKEN"


async def test_v2_failures(
    client: httpx.AsyncClient,
    settings: Settings,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    factory: Factory,
) -> None:
    expired = await mailed(client, settings, mail_runtime, smtp)
    await expire(mail_runtime, expired.token)
    for response in (
        await client.post(V2, json={"token": expired.token}),
        await client.get(V2, headers={TOKEN_HEADER: expired.token}),
    ):
        assert response.status_code == 200
        assert response.json() == {
            "status": "FAILURE",
            "reason": "TOKEN_EXPIRED",
            "profile_email": expired.email,
        }

    taken = await mailed(client, settings, mail_runtime, smtp)
    await factory.citizen(email=taken.email)
    response = await client.post(V2, json={"token": taken.token})
    assert response.status_code == 200
    assert response.json() == {
        "status": "FAILURE",
        "reason": "EMAIL_ALREADY_TAKEN",
        "profile_email": taken.email,
    }

    wrong = taken.token[:-1] + ("0" if taken.token[-1] != "0" else "1")
    response = await client.post(V2, json={"token": wrong})
    assert response.status_code == 401
    assert response.json() == {"status": "FAILURE", "reason": "INVALID_TOKEN"}


@pytest.mark.parametrize("token", ["not-a-token", "01DPT9QAZ6N0FJX21A86FRCWB3:8c652f85"])
async def test_v2_malformed_tokens_are_400(client: httpx.AsyncClient, token: str) -> None:
    for response in (
        await client.post(V2, json={"token": token}),
        await client.post(V2, json={}),
        await client.get(V2, headers={TOKEN_HEADER: token}),
        await client.get(V2),
    ):
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"


# --- starting ------------------------------------------------------------------------------------


async def test_start_needs_a_session(client: httpx.AsyncClient) -> None:
    response = await client.post(START)
    assert response.status_code == 401
    assert response.content == b""


async def test_start_without_a_profile_is_404(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    fc, headers = await login(client, settings, email=new_address(random_fiscal_code()))
    async with transaction(runtime.sessions) as session:
        await session.execute(text("DELETE FROM profiles WHERE fiscal_code = :fc"), {"fc": fc})
    response = await client.post(START, headers=headers)
    assert response.status_code == 404
    assert response.json()["title"] == "Profile not found"


async def test_start_without_an_email_is_409(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    fc, headers = await login(client, settings, email=None)
    response = await client.post(START, headers=headers)
    assert response.status_code == 409
    assert response.json()["title"] == "Email not set"
    assert await queued_payloads(runtime, fc) == []


async def test_start_once_validated_is_400(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    assert callback(await client.get(got.path + "&flow=VALIDATE"))["result"] == ["success"]
    response = await client.post(START, headers=got.headers)
    assert response.status_code == 400
    assert response.json() == {
        "title": "Validation error",
        "status": 400,
        "detail": "The email is already validated",
    }


async def test_a_new_start_voids_the_earlier_links(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    first = await mailed(client, settings, mail_runtime, smtp)
    assert (await client.post(START, headers=first.headers)).status_code == 202
    await drain(mail_runtime)
    messages = smtp.capture.to(first.email)
    assert len(messages) == 2
    second_link = the_link(messages[1])
    assert second_link != first.link
    assert failure(await client.get(first.path + "&flow=VALIDATE")) == "INVALID_TOKEN"
    second = dataclasses.replace(first, link=second_link)
    assert callback(await client.get(second.path + "&flow=VALIDATE"))["result"] == ["success"]


async def test_starts_in_a_row_send_one_mail_with_the_newest_link(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    email = new_address(random_fiscal_code())
    fc, headers = await login(client, settings, email=email)
    for _ in range(3):
        assert (await client.post(START, headers=headers)).status_code == 202
    await drain(mail_runtime)
    message = only_mail_to(smtp, email)
    [row] = await token_rows(mail_runtime, fc)
    assert f"token={row.token_id}:" in the_link(message)


async def test_no_mail_when_the_address_changed_before_the_job_ran(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    email = new_address(random_fiscal_code())
    fc, headers = await login(client, settings, email=email)
    assert (await client.post(START, headers=headers)).status_code == 202
    async with transaction(mail_runtime.sessions) as session:
        profile = await session.get(Profile, fc)
        assert profile is not None
        await set_email(session, mail_runtime.keyring, profile, "changed@example.org")
    await drain(mail_runtime)
    assert smtp.capture.to(email) == []
    assert await queued_payloads(mail_runtime, fc) == []


async def test_start_joins_the_callers_transaction(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    """What the profile update relies on: its rollback takes the token and the job with it."""
    email = new_address(random_fiscal_code())
    fc, _ = await login(client, settings, email=email)

    async with mail_runtime.sessions() as session:
        caller = await session.begin()
        profile = await session.get(Profile, fc)
        assert profile is not None
        await start_email_validation(session, mail_runtime, profile, name="Mario")
        visible = await session.scalar(
            text("SELECT count(*) FROM email_validation_tokens WHERE fiscal_code = :fc"),
            {"fc": fc},
        )
        assert visible == 1
        assert len(await queued_payloads_in(session, fc)) == 1
        await caller.rollback()
    assert await token_rows(mail_runtime, fc) == []
    assert await queued_payloads(mail_runtime, fc) == []

    async with transaction(mail_runtime.sessions) as session:
        profile = await session.get(Profile, fc)
        assert profile is not None
        await start_email_validation(session, mail_runtime, profile, name="Mario")
    assert len(await token_rows(mail_runtime, fc)) == 1
    await drain(mail_runtime)
    assert only_mail_to(smtp, email)["Subject"] == "Conferma il tuo indirizzo email"


# --- the job -------------------------------------------------------------------------------------


async def test_a_redelivered_job_resends_the_same_link(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    email = new_address(random_fiscal_code())
    fc, headers = await login(client, settings, email=email)
    assert (await client.post(START, headers=headers)).status_code == 202
    [payload] = await queued_payloads(mail_runtime, fc)
    await drain(mail_runtime)
    await send_validation_email_job(mail_runtime, orjson.loads(payload))
    first, second = smtp.capture.to(email)
    assert the_link(first) == the_link(second)


async def test_a_tampered_job_sends_nothing(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    got = await mailed(client, settings, mail_runtime, smtp)
    assert (await client.post(START, headers=got.headers)).status_code == 202
    [payload] = await queued_payloads(mail_runtime, got.fc)
    job = orjson.loads(payload)
    await drain(mail_runtime)
    assert len(smtp.capture.to(got.email)) == 2
    [row] = await token_rows(mail_runtime, got.fc)
    # The sealed validator is bound to its token id: another token's box does not open.
    other = await mailed(client, settings, mail_runtime, smtp)
    [other_row] = await token_rows(mail_runtime, other.fc)
    with capture_logs() as logs:
        await send_validation_email_job(
            mail_runtime, {**job, "token_id": other_row.token_id, "fiscal_code": other.fc}
        )
        await send_validation_email_job(mail_runtime, {**job, "sealed": "bm90IGEgYm94"})
    assert len(smtp.capture.to(other.email)) == 1
    assert len(smtp.capture.to(got.email)) == 2
    assert [e["event"] for e in logs] == ["profiles.email_validation.undeliverable"] * 2
    assert row.token_id == job["token_id"]


async def test_an_unreachable_relay_is_retried_later(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    down = dataclasses.replace(
        runtime,
        settings=settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{free_port()}?timeout=5"}
        ),
    )
    fc, headers = await login(client, settings, email=new_address(random_fiscal_code()))
    assert (await client.post(START, headers=headers)).status_code == 202
    [payload] = await queued_payloads(runtime, fc)
    with capture_logs() as logs:
        await send_validation_email_job(down, orjson.loads(payload))
    [retry] = [e for e in logs if e["event"] == "profiles.email_validation.retry"]
    assert retry["delay_seconds"] == 5.0
    retried = [orjson.loads(p) for p in await queued_payloads(runtime, fc)]
    assert sorted(p["attempt"] for p in retried) == [1, 2]
    # Clean up: these jobs must not reach another test's SMTP server.
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text(
                "DELETE FROM pgqueuer WHERE entrypoint = :name "
                "AND position(convert_to(:fc, 'UTF8') in payload) > 0"
            ),
            {"name": SEND_TASK, "fc": fc},
        )


# --- privacy -------------------------------------------------------------------------------------


async def test_no_address_name_or_token_in_clear_in_tables_or_logs(
    client: httpx.AsyncClient, settings: Settings, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    email = new_address(random_fiscal_code())
    name = "Gianfrancesco"
    with capture_logs() as logs:
        fc, headers = await login(client, settings, email=email, name=name)
        assert (await client.post(START, headers=headers)).status_code == 202
        [payload] = await queued_payloads(mail_runtime, fc)
        async with mail_runtime.sessions() as session:
            raw_rows = (
                await session.execute(
                    text(
                        "SELECT t::text, validator_hash, email_hash "
                        "FROM email_validation_tokens t WHERE fiscal_code = :fc"
                    ),
                    {"fc": fc},
                )
            ).all()
        await drain(mail_runtime)
        link = the_link(only_mail_to(smtp, email))
        token = parse_qs(urlsplit(link).query)["token"][0]
        validator = token.split(":")[1]
        parts = urlsplit(link)
        assert (await client.get(f"{parts.path}?{parts.query}&flow=VALIDATE")).status_code == 303
    [(row_text, validator_hash, email_hash)] = raw_rows
    for secret in (email, email.split("@")[0], validator, name):
        assert secret not in row_text
        assert secret.encode() not in payload
        assert secret.encode() not in bytes(validator_hash)
        assert secret.encode() not in bytes(email_hash)
    logged = repr(logs)
    for secret in (email, validator, fc, name):
        assert secret not in logged
    started = [e for e in logs if e["event"] == "profiles.email_validation.started"]
    assert [e["citizen"] for e in started] == [mail_runtime.keyring.log_ref(fc)]
