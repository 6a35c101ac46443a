"""The shipped service models become templates (``create_template``, and
``civio service create --from-model``) that render within IO's bounds."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from typer.testing import CliRunner

from civio.cli import app
from civio.core.config import Settings
from civio.core.db import transaction
from civio.servicemodels import catalogue
from civio.servicemodels.service import template_drafts
from civio.servicemodels.vocabulary import sample_values
from civio.templates.schemas import TemplateDraft
from civio.templates.service import create_template
from tests.factories import Factory, cli_env, open_citizen

MODELS = list(catalogue.all_models().values())


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.id)
async def test_every_models_drafts_become_templates_that_render_with_samples(
    client: httpx.AsyncClient, factory: Factory, model: catalogue.ServiceModel
) -> None:
    sender = await factory.sender(require_secure_channels=model.require_secure_channels)
    async with transaction(factory.runtime.sessions) as session:
        created = [
            await create_template(session, sender.service_id, TemplateDraft.model_validate(d))
            for d in template_drafts(model)
        ]
    assert [t.key for t in created] == [f"{model.id}.{m.key}" for m in model.messages]
    for flags_on in (True, False):
        values = sample_values(flags_on=flags_on)
        for template in created:
            used = {name: values[name] for name in [*template.placeholders, *template.flags]}
            preview = await client.post(
                f"/api/v1/templates/{template.id}/preview",
                json={"personalisation": used},
                headers=sender.headers,
            )
            assert preview.status_code == 200, preview.text
            variants = preview.json()["variants"]
            assert set(variants) == {"it", "en", "de"}
            for lang, variant in variants.items():
                assert variant["problems"] == [], (template.key, lang, variant["problems"])
                assert "((" not in variant["subject"] + variant["markdown"]


async def test_service_create_from_model_creates_the_services_templates(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    env = cli_env(settings)
    args = [
        "service",
        "create",
        "--from-model",
        "elezioni",
        "--organization-name",
        "Comune di Prova",
        "--organization-fiscal-code",
        "12345678901",
        "--group",
        "ApiMessageWrite",
        "--json",
    ]
    # In a thread: the command runs its own event loop.
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    elezioni = catalogue.get_model("elezioni")
    assert elezioni is not None
    assert [t["key"] for t in created["templates"]] == [
        f"elezioni.{m.key}" for m in elezioni.messages
    ]
    assert created["templates"][-1]["name"] == elezioni.messages[-1].texts["it"].name
    listed = await client.get(
        "/api/v1/templates", headers={"Ocp-Apim-Subscription-Key": created["primary_key"]}
    )
    assert listed.status_code == 200, listed.text
    assert [t["id"] for t in listed.json()["items"]] == [t["id"] for t in created["templates"]]


async def test_elezionis_appointment_is_sent_by_template_with_its_cta(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    elezioni = catalogue.get_model("elezioni")
    assert elezioni is not None
    sender = await factory.sender(require_secure_channels=True)
    async with transaction(factory.runtime.sessions) as session:
        created = {
            t.key: t
            for t in [
                await create_template(session, sender.service_id, TemplateDraft.model_validate(d))
                for d in template_drafts(elezioni)
            ]
        }
    appointment = created["elezioni.conferma_appuntamento"]
    values = sample_values(flags_on=True)
    fc, headers = await open_citizen(client, settings, preferred_languages=["de_DE"])
    sent = await client.post(
        f"/api/v1/messages/{fc}",
        json={
            "template_id": appointment.id,
            "personalisation": {
                name: values[name] for name in [*appointment.placeholders, *appointment.flags]
            },
            "due_date": "2026-06-22T10:30:00Z",
        },
        headers=sender.headers,
    )
    assert sent.status_code == 201, sent.text
    await factory.drain()
    inbox = "/api/communication/v1/messages"
    item = (await client.get(inbox, headers=headers)).json()["items"][0]
    shown = (await client.get(f"{inbox}/{item['id']}", headers=headers)).json()
    german = elezioni.messages[-1].texts["de"]
    assert shown["content"]["subject"] == german.subject
    assert shown["content"]["due_date"] == "2026-06-22T10:30:00.000Z"
    assert shown["calls_to_action"]["de"]["cta_1"]["text"] == german.cta_label
    assert shown["calls_to_action"]["de"]["cta_1"]["target"] == values["url_prenotazione"]
