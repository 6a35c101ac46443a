"""A template a test can send: Italian and English, a value, a flag and a CTA."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import Sender

CTA = """---
it:
  cta_1:
    text: "Prenota"
    action: "iohandledlink://((url))"
en:
  cta_1:
    text: "Book"
    action: "iohandledlink://((url))"
---
"""
ITALIAN = {
    "subject": "Il tuo documento è pronto",
    "markdown": CTA + "Gentile ((nome)), il documento è pronto per il ritiro allo sportello "
    "dell'anagrafe.((urgente?? Ritiralo entro una settimana.)) Porta un documento di identità.",
}
ENGLISH = {
    "subject": "Your document is ready",
    "markdown": CTA + "Dear ((nome)), your document is ready for pickup at the registry "
    "office.((urgente?? Pick it up within a week.)) Bring an identity document.",
}
VALUES: dict[str, Any] = {"nome": "Maria", "urgente": True, "url": "https://comune.example/p"}


def draft(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Documento pronto",
        "key": "documento.pronto",
        "variants": {"it": dict(ITALIAN), "en": dict(ENGLISH)},
    }
    body.update(changes)
    return body


async def create(client: httpx.AsyncClient, sender: Sender, **changes: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/templates", json=draft(**changes), headers=sender.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
