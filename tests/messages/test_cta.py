"""Calls to action in messages: the markdown's front-matter block is checked at accept,
handed to citizens parsed, and kept out of alerts (issue 11 item 4; docs/cta.md)."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml
from sqlalchemy import func, select

from civio.core.config import Settings
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.messages import cta
from civio.messages.models import Message
from civio.notifications.email import preview
from tests.factories import Factory, Sender, open_citizen, valid_message
from tests.notifications.test_push import Receiver, device_token, register, serve
from tests.smtp import SmtpServer, smtp_server

INBOX = "/api/communication/v1/messages"
CITIZEN_SPEC = Path(__file__).resolve().parents[1] / "contracts" / "io-citizen-communication.yaml"

BODY = (
    "Il tuo appuntamento all'ufficio elettorale è confermato per lunedì alle 10. "
    "Porta con te la tessera elettorale e un documento d'identità."
)
BLOCK = """---
it:
  cta_1:
    text: "Sposta appuntamento"
    action: "iohandledlink://https://comune.example.it/prenota"
  cta_2:
    text: "Chiama l'ufficio"
    action: "iohandledlink://tel:+390612345678"
en:
  cta_1:
    text: "Move the appointment"
    action: "iohandledlink://https://comune.example.it/prenota"
de:
  cta_1:
    text: "Termin verschieben"
    action: "ioit://SERVICE_DETAIL?serviceId=elezioni"
  cta_2:
    text: "Zum Portal"
    action: "iosso://https://portale.example.it/login"
---
"""

# --- the IO citizen contract ------------------------------------------------------------------


def _io_ts_semantics(node: Any) -> Any:
    """IO marks with ``x-one-of`` the ``allOf`` lists its code generator reads as "one of";
    JSON Schema needs them spelt ``anyOf`` to mean the same."""
    if isinstance(node, dict):
        out = {k: _io_ts_semantics(v) for k, v in node.items()}
        if out.pop("x-one-of", False) and "allOf" in out:
            out["anyOf"] = out.pop("allOf")
        return out
    if isinstance(node, list):
        return [_io_ts_semantics(v) for v in node]
    return node


@cache
def citizen_components() -> dict[str, Any]:
    document = yaml.safe_load(CITIZEN_SPEC.read_text())
    return _io_ts_semantics(document["components"])  # type: ignore[no-any-return]


def assert_conforms_to_citizen_api(instance: Any, schema_name: str) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": citizen_components()}
    errors = [e.message for e in jsonschema_rs.Draft4Validator(schema).iter_errors(instance)]
    assert not errors, f"{schema_name}: {errors}"


def test_the_citizen_contract_check_catches_a_wrong_shape() -> None:
    with pytest.raises(AssertionError):
        assert_conforms_to_citizen_api(
            {"id": "x", "content": {"subject": "short"}}, "CreatedMessageWithContentAndAttachments"
        )


# --- helpers ----------------------------------------------------------------------------------


async def submit(
    client: httpx.AsyncClient, sender: Sender, fc: str, markdown: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/messages/{fc}",
        json=valid_message(subject="Appuntamento confermato", markdown=markdown),
        headers=sender.headers,
    )


async def stored_messages(factory: Factory, sender: Sender) -> int:
    async with factory.runtime.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.sender_service_id == sender.service_id)
        )
    return int(count or 0)


# --- accepted and returned structured -----------------------------------------------------------


async def test_a_valid_block_reaches_the_citizen_as_structured_actions(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    fc, headers = await open_citizen(client, settings)
    sender = await factory.sender()
    created = await submit(client, sender, fc, BLOCK + BODY)
    assert created.status_code == 201, created.text
    await factory.drain()

    message_id = created.json()["id"]
    for query in ("", "?public_message=true"):
        response = await client.get(f"{INBOX}/{message_id}{query}", headers=headers)
        assert response.status_code == 200, response.text
        message = response.json()
        # IO's clients keep working: the markdown is as sent, the block included.
        assert message["content"]["markdown"] == BLOCK + BODY
        assert_conforms_to_citizen_api(message, "CreatedMessageWithContentAndAttachments")
        assert message["calls_to_action"] == {
            "it": {
                "cta_1": {
                    "text": "Sposta appuntamento",
                    "action": "iohandledlink://https://comune.example.it/prenota",
                    "kind": "link",
                    "target": "https://comune.example.it/prenota",
                },
                "cta_2": {
                    "text": "Chiama l'ufficio",
                    "action": "iohandledlink://tel:+390612345678",
                    "kind": "link",
                    "target": "tel:+390612345678",
                },
            },
            "en": {
                "cta_1": {
                    "text": "Move the appointment",
                    "action": "iohandledlink://https://comune.example.it/prenota",
                    "kind": "link",
                    "target": "https://comune.example.it/prenota",
                }
            },
            "de": {
                "cta_1": {
                    "text": "Termin verschieben",
                    "action": "ioit://SERVICE_DETAIL?serviceId=elezioni",
                    "kind": "internal",
                    "target": "SERVICE_DETAIL?serviceId=elezioni",
                },
                "cta_2": {
                    "text": "Zum Portal",
                    "action": "iosso://https://portale.example.it/login",
                    "kind": "sso",
                    "target": "https://portale.example.it/login",
                },
            },
        }
    # The sender reads back exactly what it sent.
    sent = (await client.get(created.headers["Location"], headers=sender.headers)).json()
    assert sent["message"]["content"]["markdown"] == BLOCK + BODY
    assert "calls_to_action" not in sent["message"]


async def test_a_message_without_a_block_has_no_actions(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    fc, headers = await open_citizen(client, settings)
    sender = await factory.sender()
    # A horizontal rule further down is body text, not a block.
    markdown = BODY + "\n\n---\n\nit: questo non è un blocco di pulsanti."
    created = await submit(client, sender, fc, markdown)
    assert created.status_code == 201, created.text
    await factory.drain()
    message = (await client.get(f"{INBOX}/{created.json()['id']}", headers=headers)).json()
    assert message["content"]["markdown"] == markdown
    assert "calls_to_action" not in message
    assert_conforms_to_citizen_api(message, "CreatedMessageWithContentAndAttachments")


async def test_a_block_closed_by_dots_and_a_40_character_label_are_accepted(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    fc, headers = await open_citizen(client, settings)
    sender = await factory.sender()
    label = "x" * 40
    block = f'---\nit:\n  cta_1: {{text: "{label}", action: "iohandledlink://copy:AB12"}}\n...\n'
    created = await submit(client, sender, fc, block + BODY)
    assert created.status_code == 201, created.text
    await factory.drain()
    message = (await client.get(f"{INBOX}/{created.json()['id']}", headers=headers)).json()
    assert message["calls_to_action"]["it"]["cta_1"]["text"] == label
    assert message["calls_to_action"]["it"]["cta_1"]["target"] == "copy:AB12"


# --- refused at accept ------------------------------------------------------------------------

LAUGHS = "\n".join(
    [
        '---\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "it: *i",
        "---\n",
    ]
)


def block_with(cta_1: str, *, more: str = "") -> str:
    return f"---\nit:\n  cta_1: {cta_1}\n{more}---\n"


MALFORMED = {
    "not a mapping": ("---\n- Prenota\n- Annulla\n---\n", "must be a mapping of locales"),
    "empty block": ("---\n---\n", "must be a mapping of locales"),
    "unknown locale": (
        "---\nit:\n  cta_1: {text: a, action: 'ioit://X'}\nfr:\n  cta_1: {text: b, action: c}\n"
        "---\n",
        "unknown locale(s) fr",
    ),
    "missing text": (block_with('{action: "ioit://PROFILE_MAIN"}'), "it.cta_1.text is required"),
    "empty text": (block_with('{text: "  ", action: "ioit://PROFILE_MAIN"}'), "must not be empty"),
    "text too long": (block_with(f'{{text: "{"x" * 41}", action: "ioit://X"}}'), "at most 40"),
    "text not a string": (block_with('{text: 2026, action: "ioit://X"}'), "must be a string"),
    "locale not a mapping": ("---\nit: Prenota\n---\n", "it: must be a mapping with cta_1"),
    "button not a mapping": (block_with('"Prenota"'), "it.cta_1: must be a mapping"),
    "text with a control character": (
        block_with('{text: "Prenota\\tora", action: "ioit://X"}'),
        "one line",
    ),
    "action not a string": (block_with('{text: "Prenota", action: 42}'), "must be a string"),
    "action with a space": (
        block_with('{text: "Prenota", action: "iohandledlink://https://a.it/x y"}'),
        "spaces",
    ),
    "web link without a host": (
        block_with('{text: "Prenota", action: "iohandledlink://https:///prenota"}'),
        "without a host",
    ),
    "internal link without a route": (
        block_with('{text: "Apri", action: "ioit://"}'),
        "names no app route",
    ),
    "missing action": (block_with('{text: "Prenota"}'), "it.cta_1.action is required"),
    "bad scheme": (
        block_with('{text: "Prenota", action: "https://comune.example.it"}'),
        "must start with iohandledlink://",
    ),
    "bad handled-link scheme": (
        block_with('{text: "Prenota", action: "iohandledlink://ftp://comune.example.it"}'),
        "through iohandledlink://",
    ),
    "handled link without a value": (
        block_with('{text: "Chiama", action: "iohandledlink://tel:"}'),
        "followed by a value",
    ),
    "sso without an address": (
        block_with('{text: "Entra", action: "iosso://portale"}'),
        "iosso://",
    ),
    "extra key in a button": (
        block_with('{text: "Prenota", action: "ioit://X", style: "primary"}'),
        "unknown key(s) style",
    ),
    "extra key in a locale": (
        block_with('{text: "Prenota", action: "ioit://X"}', more="  cta_3: {text: a, action: b}\n"),
        "unknown key(s) cta_3",
    ),
    "no cta_1": ("---\nit:\n  cta_2: {text: a, action: 'ioit://X'}\n---\n", "cta_1 is required"),
    "no Italian": ("---\nen:\n  cta_1: {text: a, action: 'ioit://X'}\n---\n", "'it' locale"),
    "duplicate locale": (
        block_with('{text: "a", action: "ioit://X"}', more="it:\n  cta_1: {text: b, action: c}\n"),
        "the key 'it' twice",
    ),
    "unterminated block": (
        "---\nit:\n  cta_1:\n    text: Prenota\n    action: ioit://PROFILE_MAIN\n",
        "never closed",
    ),
    "block not at the start": (
        "\n\n" + block_with('{text: "Prenota", action: "ioit://X"}'),
        "must open on the markdown's first line",
    ),
    "opening line with trailing blanks": (
        "---  \nit:\n  cta_1: {text: a, action: 'ioit://X'}\n---\n",
        "with exactly '---'",
    ),
    "not YAML": ("---\nit: {cta_1: [\n---\n", "not valid YAML"),
    "anchors and aliases (billion laughs)": (LAUGHS, "anchors or aliases"),
    "a YAML tag": ("---\nit: !!python/object/apply:os.system ['true']\n---\n", "tags"),
    "nesting too deep": ("---\nit: {cta_1: {text: {a: {b: c}}}}\n---\n", "nested deeper"),
}


@pytest.mark.parametrize(("block", "expected"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_block_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, factory: Factory, block: str, expected: str
) -> None:
    fc = await factory.citizen()
    sender = await factory.sender()
    response = await submit(client, sender, fc, block + BODY)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Invalid message structure"
    assert problem["detail"].startswith("content.markdown: ")
    assert expected in problem["detail"]
    assert await stored_messages(factory, sender) == 0
    await factory.drain()
    assert await stored_messages(factory, sender) == 0


async def test_the_markdown_bounds_count_the_block(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    """IO's 80..10000 apply to the markdown as sent: a block may carry a short body, and a
    block cannot stretch a body past the limit."""
    fc = await factory.citizen()
    sender = await factory.sender()
    short_body = "Ci vediamo lunedì."
    block = BLOCK  # well over 80 characters by itself
    assert len(short_body) < 80 < len(block + short_body)
    assert (await submit(client, sender, fc, block + short_body)).status_code == 201
    too_long = block + "x" * (10001 - len(block))
    refused = await submit(client, sender, fc, too_long)
    assert refused.status_code == 400
    assert "root.content.markdown" in refused.json()["detail"]


# --- alerts never show the block ---------------------------------------------------------------


def test_the_preview_starts_after_the_block_however_it_is_closed() -> None:
    for closing in ("---", "..."):
        block = BLOCK.replace("\n---\n", f"\n{closing}\n").rstrip("\n").rsplit("\n", 1)[0]
        text = preview(f"{block}\n{closing}\n{BODY}")
        assert text.startswith("Il tuo appuntamento")
        for leak in ("cta_1", "iohandledlink", "Sposta", "it:"):
            assert leak not in text


def test_a_byte_order_mark_may_precede_the_block() -> None:
    """The app's reader skips one; so does civio, rather than letting an unchecked block
    through as body text."""
    assert cta.split("\ufeff" + BLOCK + BODY).body == BODY
    with pytest.raises(cta.BadBlock):
        cta.check_block("\ufeff---\nen:\n  cta_1: {text: a, action: 'ioit://X'}\n---\n" + BODY)


def test_messages_accepted_before_the_check_are_shown_as_they_are() -> None:
    """Reading never fails on a block that breaks the rules: no actions, the text intact."""
    broken = "---\nit: {cta_1: [\n" + BODY
    assert cta.calls_to_action(broken) is None
    assert cta.body_of(broken) == broken
    assert "Il tuo appuntamento" in preview(broken)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def gateway() -> AsyncIterator[Receiver]:
    async for receiver in serve(Receiver()):
        yield receiver


@pytest.mark.parametrize("closing", ["---", "..."])
async def test_neither_the_email_nor_the_push_shows_the_block(
    client: httpx.AsyncClient,
    factory: Factory,
    runtime: Runtime,
    settings: Settings,
    smtp: SmtpServer,
    gateway: Receiver,
    closing: str,
) -> None:
    alerting = dataclasses.replace(
        runtime,
        settings=settings.model_copy(
            update={"smtp_url": smtp.url, "push_gateway_url": f"{gateway.base_url}/api/push"}
        ),
    )
    to = f"citizen-{secrets.token_hex(4)}@example.org"
    # LEGACY: logging in then updates the profile without naming a mode (AUTO would refuse
    # the implied downgrade).
    fc = await factory.citizen(email=to, mode="LEGACY")
    _, headers = await open_citizen(client, settings, fc, push_notifications_content_type="FULL")
    await register(client, headers, "fcmv1", device_token())
    sender = await factory.sender()
    block = BLOCK[: -len("---\n")] + f"{closing}\n"
    created = await submit(client, sender, fc, block + BODY)
    assert created.status_code == 201, created.text
    await Worker(alerting).run(drain=True)

    [mail] = smtp.capture.to(to)
    parts = [mail.get_body((kind,)) for kind in ("plain", "html")]
    texts = [part.get_content() for part in parts if part is not None]
    assert len(texts) == 2
    [request] = gateway.received
    [push] = request.json()["notifications"]
    assert push["message"] == "Appuntamento confermato"  # the subject, as IO's FULL push
    for text in [*texts, str(mail["Subject"]), push["title"], push["message"]]:
        for leak in ("cta_1", "iohandledlink", "ioit://", "iosso", "Sposta appuntamento"):
            assert leak not in text
    assert "Il tuo appuntamento" in texts[0]
