"""A municipality goes from nothing to a published service built from a model and writes to
a citizen with one of the model's templates (issue 11, "Elezioni end to end").

Everything a user would see is checked through real parts: the operator CLI, the PA and
citizen APIs, an SMTP receiver and a push gateway on local sockets, the real worker. The
same journey with a model that is not sensitive (Anagrafe) proves the test tells the two
apart: there the citizen gets the email and the verbose push.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from civio.cli import app
from civio.core.config import Settings
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.servicemodels import catalogue
from civio.servicemodels.vocabulary import sample_values
from tests.factories import Factory, cli_env, open_citizen
from tests.notifications.test_push import (
    ANONYMOUS_IT,
    Receiver,
    device_token,
    gateway_entries,
    register,
    serve,
)
from tests.smtp import SmtpServer, smtp_server

ORGANIZATION = "Comune di Valdoria"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def gateway() -> AsyncIterator[Receiver]:
    async for receiver in serve(Receiver()):
        yield receiver


@pytest.fixture
def worker_runtime(
    runtime: Runtime, settings: Settings, smtp: SmtpServer, gateway: Receiver
) -> Runtime:
    """The worker with both alert channels wired to the local receivers."""
    return dataclasses.replace(
        runtime,
        settings=settings.model_copy(
            update={"smtp_url": smtp.url, "push_gateway_url": f"{gateway.base_url}/api/push"}
        ),
    )


async def operator_creates_from_model(settings: Settings, model_id: str) -> dict[str, Any]:
    env = cli_env(settings)
    args = [
        "service",
        "create",
        "--from-model",
        model_id,
        "--organization-name",
        ORGANIZATION,
        "--organization-fiscal-code",
        "01234567890",
        "--scope",
        "LOCAL",
        "--group",
        "ApiMessageWrite",
        "--group",
        "ApiMessageRead",
        "--visible",
        "--json",
    ]
    # In a thread: the command runs its own event loop.
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.stdout)
    return created


@pytest.mark.parametrize(
    ("model_id", "message_key"),
    [("elezioni", "conferma_appuntamento"), ("anagrafe", "appuntamento")],
)
async def test_a_service_from_a_model_writes_to_a_citizen_by_template(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    worker_runtime: Runtime,
    smtp: SmtpServer,
    gateway: Receiver,
    model_id: str,
    message_key: str,
) -> None:
    model = catalogue.get_model(model_id)
    created = await operator_creates_from_model(settings, model_id)
    service_id = created["service_id"]
    assert created["require_secure_channels"] is model.require_secure_channels
    pa = {"Ocp-Apim-Subscription-Key": created["primary_key"]}

    # Published: citizens find it in the catalogue.
    card = await client.get(f"/api/catalog/v1/services/{service_id}")
    assert card.status_code == 200, card.text
    assert card.json()["name"] == model.card("it").name

    # A citizen with a validated email, push content FULL and a phone.
    email = f"citizen-{secrets.token_hex(4)}@example.org"
    fc = await factory.citizen(email=email)
    _, citizen = await open_citizen(
        client,
        settings,
        fc,
        push_notifications_content_type="FULL",
        service_preferences_settings={"mode": "AUTO"},
    )
    profile = (await client.get("/api/identity/v1/profile", headers=citizen)).json()
    assert profile["is_email_validated"] is True
    await register(client, citizen, "apns", device_token())

    # The body sends the model's appointment confirmation by template id.
    [template] = [t for t in created["templates"] if t["key"] == f"{model_id}.{message_key}"]
    shown = (await client.get(f"/api/v1/templates/{template['id']}", headers=pa)).json()
    values = sample_values(flags_on=True)
    personalisation = {name: values[name] for name in [*shown["placeholders"], *shown["flags"]]}
    due = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sent = await client.post(
        f"/api/v1/messages/{fc}",
        json={
            "template_id": template["id"],
            "personalisation": personalisation,
            "due_date": due,
        },
        headers=pa,
    )
    assert sent.status_code == 201, sent.text
    message_id = sent.json()["id"]
    await Worker(worker_runtime).run(drain=True)

    # The inbox holds it, rendered in Italian, with the model's button.
    opened = await client.get(f"/api/communication/v1/messages/{message_id}", headers=citizen)
    assert opened.status_code == 200, opened.text
    message = opened.json()
    [model_message] = [m for m in model.messages if m.key == message_key]
    italian = model_message.texts["it"]
    subject = message["content"]["subject"]
    assert subject.startswith(italian.subject.split("((")[0])
    assert "((" not in subject + message["content"]["markdown"]
    assert message["calls_to_action"]["it"]["cta_1"]["text"] == italian.cta_label
    assert message["calls_to_action"]["it"]["cta_1"]["action"].startswith("iohandledlink://")

    [entry] = gateway_entries(gateway)
    read = await client.get(f"/api/v1/messages/{fc}/{message_id}", headers=pa)
    assert read.status_code == 200, read.text
    status = read.json()
    assert status["status"] == "PROCESSED"
    assert status["message"]["content"]["subject"] == subject
    mails = smtp.capture.to(email)
    if model.require_secure_channels:
        # Sensitive: no email at all, and a push that names neither the body nor the subject.
        assert mails == []
        assert (entry["title"], entry["message"]) == ANONYMOUS_IT
        assert ORGANIZATION not in gateway.received[0].body.decode()
        assert "email" not in status.get("notification", {})
    else:
        [mail] = mails
        assert ORGANIZATION in mail.get_body(("plain",)).get_content()
        assert ORGANIZATION in entry["title"]
        assert status["notification"]["email"] == "SENT"
