"""Sending by ``template_id``: every variant rendered at accept, the citizen's language
chosen when the message is processed."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from civio.core.config import Settings
from civio.messages.models import Message
from tests.factories import Factory, Sender, open_citizen, valid_message
from tests.templates.helpers import ITALIAN, VALUES, create

INBOX = "/api/communication/v1/messages"


async def send(client: httpx.AsyncClient, sender: Sender, fc: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/messages/{fc}", json=body, headers=sender.headers)


async def test_the_inbox_shows_the_citizens_language_or_italian(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    sender = await factory.sender()
    template = await create(client, sender)
    english_fc, english = await open_citizen(client, settings, preferred_languages=["en_GB"])
    german_fc, german = await open_citizen(client, settings, preferred_languages=["de_DE"])
    sent = {}
    for fc in (english_fc, german_fc):
        response = await send(
            client, sender, fc, template_id=template["id"], personalisation=VALUES
        )
        assert response.status_code == 201, response.text
        sent[fc] = response.headers["Location"]
        # Before processing the sender sees no content, as for any message.
        assert "content" not in (await client.get(sent[fc], headers=sender.headers)).json()
    await factory.drain()

    page = (await client.get(INBOX, headers=english)).json()
    message_id = page["items"][0]["id"]
    shown = (await client.get(f"{INBOX}/{message_id}", headers=english)).json()
    assert shown["content"]["subject"] == "Your document is ready"
    assert "Dear Maria" in shown["content"]["markdown"]
    assert shown["calls_to_action"]["en"]["cta_1"]["text"] == "Book"
    read = (await client.get(sent[english_fc], headers=sender.headers)).json()
    assert read["status"] == "PROCESSED"
    assert read["message"]["content"]["subject"] == "Your document is ready"
    assert "variants" not in read["message"]["content"]

    # No German variant: Italian.
    page = (await client.get(INBOX, headers=german)).json()
    shown = (await client.get(f"{INBOX}/{page['items'][0]['id']}", headers=german)).json()
    assert shown["content"]["subject"] == ITALIAN["subject"]
    assert "Gentile Maria" in shown["content"]["markdown"]
    read = (await client.get(sent[german_fc], headers=sender.headers)).json()
    assert read["message"]["content"]["subject"] == ITALIAN["subject"]


async def test_a_version_is_sent_as_it_was_and_payment_data_rides_along(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    sender = await factory.sender(max_amount=10_000)
    template = await create(client, sender)
    newer = dict(ITALIAN, subject="Documento pronto: versione due")
    await client.put(
        f"/api/v1/templates/{template['id']}",
        json={"name": "Documento", "variants": {"it": newer}},
        headers=sender.headers,
    )
    fc, _ = await open_citizen(client, settings)
    response = await send(
        client,
        sender,
        fc,
        template_id=template["id"],
        template_version=1,
        personalisation=VALUES,
        payment_data={"amount": 1200, "notice_number": "012345678901234567"},
        due_date="2030-01-01T10:00:00Z",
    )
    assert response.status_code == 201, response.text
    latest = await send(client, sender, fc, template_id=template["id"], personalisation=VALUES)
    await factory.drain()
    first = (await client.get(response.headers["Location"], headers=sender.headers)).json()
    content = first["message"]["content"]
    assert content["subject"] == ITALIAN["subject"]
    assert content["payment_data"]["amount"] == 1200
    assert content["payment_data"]["payee"] == {"fiscal_code": sender.organization_fiscal_code}
    assert content["due_date"] == "2030-01-01T10:00:00.000Z"
    second = (await client.get(latest.headers["Location"], headers=sender.headers)).json()
    assert second["message"]["content"]["subject"] == newer["subject"]


async def count_messages(factory: Factory, fc: str) -> int:
    async with factory.runtime.sessions() as session:
        found = await session.scalar(
            select(func.count()).select_from(Message).where(Message.fiscal_code == fc)
        )
        return int(found or 0)


async def test_bad_sends_by_template_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    sender, other = await factory.sender(max_amount=100), await factory.sender()
    template = await create(client, sender)
    theirs = await create(client, other)
    short = await create(
        client,
        sender,
        key="breve",
        variants={"it": {"subject": "Promemoria ((cosa))", "markdown": "Ricorda: ((cosa))."}},
    )
    fc, _ = await open_citizen(client, settings)
    tid = template["id"]
    cases: dict[str, tuple[dict[str, Any], int, str, str]] = {
        "unknown template": (
            {"template_id": "01JDXZ2T5G8Q4K7W3M6N9P1R2S", "personalisation": VALUES},
            404,
            "Template not found",
            "",
        ),
        "another service's template": (
            {"template_id": theirs["id"], "personalisation": VALUES},
            404,
            "Template not found",
            "",
        ),
        "an unknown version": (
            {"template_id": tid, "template_version": 9, "personalisation": VALUES},
            404,
            "Template version not found",
            "",
        ),
        "a version no template can reach": (
            {"template_id": tid, "template_version": 10**12, "personalisation": VALUES},
            400,
            "Invalid message structure",
            "root.template_version",
        ),
        "every placeholder problem at once": (
            {"template_id": tid, "personalisation": {"nome": " ", "nmoe": "x", "url": "u"}},
            400,
            "Invalid personalisation",
            "missing: urgente; unknown (the template does not use them): nmoe; empty: nome",
        ),
        "wrong types": (
            {
                "template_id": tid,
                "personalisation": {"nome": {"a": 1}, "urgente": "yes", "url": True},
            },
            400,
            "Invalid personalisation",
            "must be true or false: urgente; must be a string or a number: nome, url",
        ),
        "a rendered body out of bounds": (
            {"template_id": short["id"], "personalisation": {"cosa": "IMU"}},
            400,
            "Invalid message structure",
            "at root.rendered.it.markdown",
        ),
        "a rendered CTA block that breaks": (
            {"template_id": tid, "personalisation": dict(VALUES, url="not a url")},
            400,
            "Invalid message structure",
            "rendered.it.markdown:",
        ),
        "both content and template_id": (
            {**valid_message(), "template_id": tid, "personalisation": VALUES},
            400,
            "Invalid message structure",
            "not both",
        ),
        "neither": ({"personalisation": VALUES}, 400, "Invalid message structure", "Give either"),
        "personalisation beside content": (
            {**valid_message(), "personalisation": VALUES},
            400,
            "Invalid message structure",
            "personalisation: only with template_id",
        ),
        "a bad payment beside the template": (
            {
                "template_id": tid,
                "personalisation": VALUES,
                "payment_data": {"amount": 0, "notice_number": "012345678901234567"},
            },
            400,
            "Invalid message structure",
            "root.payment_data.amount",
        ),
        "an amount over the service's maximum": (
            {
                "template_id": tid,
                "personalisation": VALUES,
                "payment_data": {"amount": 1200, "notice_number": "012345678901234567"},
            },
            400,
            "Error while sending payment metadata",
            "exceeds the maximum",
        ),
    }
    for case, (body, status, title, detail) in cases.items():
        response = await send(client, sender, fc, **body)
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json", case
        assert response.json()["title"] == title, (case, response.json())
        assert detail in response.json().get("detail", ""), (case, response.json())
    assert await count_messages(factory, fc) == 0
