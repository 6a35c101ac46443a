"""Email alerts for new messages, through a real SMTP server (issue: notifications)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import update

from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.notifications.email import ZERO_WIDTH_SPACE, preview, send_email_job
from civio.notifications.models import Notification
from civio.profiles.models import Profile, ServicePreference
from civio.services import service as services
from civio.services.schemas import ServiceUpdate
from tests.factories import Factory, Sender, valid_message
from tests.smtp import SmtpServer, free_port, smtp_server

MARKDOWN = (
    "# Avviso\n\nTesto introduttivo che non compare.\n\n---\n\n"
    "Gentile cittadino, il **certificato** è pronto. Ritiralo allo sportello "
    "o scaricalo da https://comune.example.it/certificati entro fine mese."
)


def test_preview_follows_io() -> None:
    text = preview(MARKDOWN)
    assert "introduttivo" not in text  # only what follows the last ---
    assert "**" not in text
    assert "[link rimosso]" in text
    assert "https://" not in text
    assert f".{ZERO_WIDTH_SPACE}" in text
    long = preview("x " * 200).replace(ZERO_WIDTH_SPACE, "")
    assert long.endswith("...")
    assert len(long) == 134 + 3


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mail_runtime(runtime: Runtime, settings: Settings, smtp: SmtpServer) -> Runtime:
    return dataclasses.replace(runtime, settings=settings.model_copy(update={"smtp_url": smtp.url}))


async def send(client: httpx.AsyncClient, sender: Sender, fc: str, **content: object) -> str:
    body = valid_message(**content) if content else valid_message(markdown=MARKDOWN)
    response = await client.post(f"/api/v1/messages/{fc}", json=body, headers=sender.headers)
    assert response.status_code == 201, response.text
    return str(response.headers["Location"])


def address() -> str:
    return f"citizen-{secrets.token_hex(4)}@example.org"


async def test_a_validated_address_gets_one_alert(
    client: httpx.AsyncClient, factory: Factory, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    to = address()
    fc = await factory.citizen(email=to)
    sender = await factory.sender()
    location = await send(client, sender, fc)
    await Worker(mail_runtime).run(drain=True)
    [mail] = smtp.capture.to(to)
    assert mail["Subject"] == "Your permit is ready"
    assert mail["Content-Language"] == "it"
    message_id = location.rsplit("/", 1)[1]
    assert mail["X-Italia-Messages-MessageId"] == message_id
    assert mail["X-Italia-Messages-NotificationId"]
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    plain = text.get_content()
    assert "Hai un nuovo messaggio da leggere" in plain
    assert "Comune di Prova" in plain
    assert "[link rimosso]" in plain
    assert "introduttivo" not in plain
    assert "Apri l'app" in html.get_content()
    status = (await client.get(location, headers=sender.headers)).json()
    assert status["notification"] == {"email": "SENT"}


async def test_alert_language_follows_the_profile(
    client: httpx.AsyncClient, factory: Factory, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    to = address()
    fc = await factory.citizen(email=to)
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(
            update(Profile).where(Profile.fiscal_code == fc).values(preferred_languages=["de_DE"])
        )
    await send(client, await factory.sender(), fc)
    await Worker(mail_runtime).run(drain=True)
    [mail] = smtp.capture.to(to)
    assert mail["Content-Language"] == "de"
    body = mail.get_body(("plain",))
    assert body is not None
    assert "Sie haben eine neue Nachricht" in body.get_content()


async def _mails_for(
    client: httpx.AsyncClient,
    factory: Factory,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    *,
    validated: bool = True,
    service_secure: bool = False,
    message_secure: bool | None = None,
    email_switch: bool = True,
) -> tuple[list[EmailMessage], dict[str, object]]:
    to = address()
    fc = await factory.citizen(email=to, mode="AUTO")
    sender = await factory.sender()
    async with transaction(factory.runtime.sessions) as session:
        if not validated:
            await session.execute(
                update(Profile).where(Profile.fiscal_code == fc).values(is_email_validated=False)
            )
        if service_secure:
            await services.update_service(
                session,
                sender.service_id,
                ServiceUpdate(require_secure_channels=True),
                sandbox_fiscal_code="AAAAAA00A00A000A",
            )
        if not email_switch:
            session.add(
                ServicePreference(
                    fiscal_code=fc,
                    service_id=sender.service_id,
                    settings_version=0,
                    is_inbox_enabled=True,
                    is_email_enabled=False,
                    is_webhook_enabled=True,
                )
            )
    content = {} if message_secure is None else {"require_secure_channels": message_secure}
    location = await send(client, sender, fc, **content)
    await Worker(mail_runtime).run(drain=True)
    status = (await client.get(location, headers=sender.headers)).json()
    assert status["status"] == "PROCESSED"
    return smtp.capture.to(to), status


@pytest.mark.parametrize(
    ("options", "mailed"),
    [
        ({}, True),
        ({"validated": False}, False),
        ({"service_secure": True}, False),
        ({"message_secure": True}, False),
        ({"service_secure": True, "message_secure": False}, True),  # the message overrides
        ({"email_switch": False}, False),
    ],
)
async def test_channel_decision(
    client: httpx.AsyncClient,
    factory: Factory,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    options: dict[str, bool],
    mailed: bool,
) -> None:
    mails, status = await _mails_for(client, factory, mail_runtime, smtp, **options)
    assert len(mails) == (1 if mailed else 0)
    # No channel: no notification record, and the message is still PROCESSED.
    assert ("notification" in status) is mailed


async def test_sandbox_recipient_mails_the_service_owner(
    client: httpx.AsyncClient, factory: Factory, mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    owner = address()
    sender = await factory.sender(owner_email=owner)
    await factory.citizen("AAAAAA00A00A000A")
    await send(client, sender, "AAAAAA00A00A000A")
    await Worker(mail_runtime).run(drain=True)
    assert len(smtp.capture.to(owner)) == 1


async def test_smtp_down_throttles_then_sends_when_back(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime, settings: Settings
) -> None:
    port = free_port()
    down = dataclasses.replace(
        runtime, settings=settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
    )
    to = address()
    fc = await factory.citizen(email=to)
    sender = await factory.sender()
    location = await send(client, sender, fc)
    await Worker(down).run(drain=True)  # processes, plans, tries once: connection refused
    status = (await client.get(location, headers=sender.headers)).json()
    assert status["notification"] == {"email": "THROTTLED"}
    notification_id = await _notification_id(factory, location)
    with smtp_server(port) as smtp:
        await send_email_job(down, {"notification_id": notification_id})  # the retry
        assert len(smtp.capture.to(to)) == 1
    status = (await client.get(location, headers=sender.headers)).json()
    assert status["notification"] == {"email": "SENT"}
    # A late duplicate of the retry job changes nothing and sends nothing.
    await send_email_job(down, {"notification_id": notification_id})


async def test_ttl_passing_while_smtp_is_down_expires_the_alert(
    client: httpx.AsyncClient, factory: Factory, runtime: Runtime, settings: Settings
) -> None:
    port = free_port()
    down = dataclasses.replace(
        runtime, settings=settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
    )
    to = address()
    fc = await factory.citizen(email=to)
    sender = await factory.sender()
    location = await send(client, sender, fc)
    await Worker(down).run(drain=True)
    notification_id = await _notification_id(factory, location)
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with smtp_server(port) as smtp:
        await send_email_job(down, {"notification_id": notification_id})
        assert smtp.capture.to(to) == []
    status = (await client.get(location, headers=sender.headers)).json()
    assert status["notification"] == {"email": "EXPIRED"}


async def test_refused_recipient_fails_without_retry(
    client: httpx.AsyncClient, factory: Factory, mail_runtime: Runtime
) -> None:
    fc = await factory.citizen(email=f"refused-{secrets.token_hex(3)}@example.org")
    sender = await factory.sender()
    location = await send(client, sender, fc)
    await Worker(mail_runtime).run(drain=True)
    status = (await client.get(location, headers=sender.headers)).json()
    assert status["notification"] == {"email": "FAILED"}


async def _notification_id(factory: Factory, location: str) -> str:
    from sqlalchemy import select

    message_id = location.rsplit("/", 1)[1]
    async with factory.runtime.sessions() as session:
        found = await session.scalar(
            select(Notification.id).where(Notification.message_id == message_id)
        )
    assert found is not None
    return found
