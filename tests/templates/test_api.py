"""``/api/v1/templates``: a service keeps its own versioned templates and previews them."""

from __future__ import annotations

import httpx

from tests.factories import Factory, Sender
from tests.templates.helpers import ENGLISH, ITALIAN, VALUES, create, draft

TEMPLATES = "/api/v1/templates"


async def total(client: httpx.AsyncClient, sender: Sender) -> int:
    listed = await client.get(TEMPLATES, headers=sender.headers)
    assert listed.status_code == 200, listed.text
    count: int = listed.json()["total"]
    return count


async def test_create_get_update_and_versions(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    created = await create(client, sender)
    assert created["version"] == 1
    assert created["key"] == "documento.pronto"
    assert created["placeholders"] == ["nome", "url"]
    assert created["flags"] == ["urgente"]
    assert set(created["variants"]) == {"it", "en"}
    url = f"{TEMPLATES}/{created['id']}"
    assert (await client.get(url, headers=sender.headers)).json() == created

    changed = dict(ITALIAN, subject="Il documento che hai chiesto è pronto")
    updated = await client.put(
        url, json=draft(name="Documento", variants={"it": changed}), headers=sender.headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.json()["name"] == "Documento"
    assert set(updated.json()["variants"]) == {"it"}

    versions = (await client.get(f"{url}/versions", headers=sender.headers)).json()
    assert [v["version"] for v in versions["items"]] == [1, 2]
    # Version 1 is what it was: a new version never rewrites an old one.
    assert versions["items"][0]["variants"]["en"] == ENGLISH
    assert versions["items"][0]["name"] == "Documento pronto"
    assert versions["items"][1]["variants"]["it"]["subject"] == changed["subject"]


async def test_the_list_is_the_services_own_and_paginated(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender, other = await factory.sender(), await factory.sender()
    ids = [(await create(client, sender, key=f"t{i}"))["id"] for i in range(3)]
    await create(client, other)
    page = (await client.get(f"{TEMPLATES}?limit=2", headers=sender.headers)).json()
    assert [item["id"] for item in page["items"]] == ids[:2]
    assert page["total"] == 3
    rest = (await client.get(f"{TEMPLATES}?limit=2&offset=2", headers=sender.headers)).json()
    assert [item["id"] for item in rest["items"]] == ids[2:]
    assert (await client.get(f"{TEMPLATES}?limit=101", headers=sender.headers)).status_code == 400


async def test_another_services_template_does_not_exist_for_it(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    owner, other = await factory.sender(), await factory.sender()
    created = await create(client, owner)
    url = f"{TEMPLATES}/{created['id']}"
    for response in (
        await client.get(url, headers=other.headers),
        await client.put(url, json=draft(), headers=other.headers),
        await client.get(f"{url}/versions", headers=other.headers),
        await client.post(f"{url}/preview", json={}, headers=other.headers),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["title"] == "Template not found"
    assert (await client.get(url, headers=owner.headers)).json()["version"] == 1


async def test_preview_renders_every_language_with_values_or_samples(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    created = await create(client, sender)
    url = f"{TEMPLATES}/{created['id']}/preview"
    shown = await client.post(url, json={"personalisation": VALUES}, headers=sender.headers)
    assert shown.status_code == 200, shown.text
    variants = shown.json()["variants"]
    assert "Dear Maria, your document" in variants["en"]["markdown"]
    assert "Ritiralo entro una settimana." in variants["it"]["markdown"]
    assert variants["en"]["problems"] == []
    assert variants["en"]["calls_to_action"]["en"]["cta_1"]["target"] == (
        "https://comune.example/p"
    )
    sample = (await client.post(url, json={}, headers=sender.headers)).json()
    assert sample["sample"] is True
    assert "Gentile [nome]" in sample["variants"]["it"]["markdown"]
    missing = await client.post(
        url, json={"personalisation": {"nome": "Maria"}}, headers=sender.headers
    )
    assert missing.status_code == 400
    assert "missing: urgente, url" in missing.json()["detail"]


async def test_a_short_rendered_body_is_shown_as_a_problem_in_the_preview(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    short = {"subject": "Promemoria ((cosa))", "markdown": "Ricorda: ((cosa))."}
    created = await create(client, sender, key=None, variants={"it": short})
    shown = await client.post(
        f"{TEMPLATES}/{created['id']}/preview",
        json={"personalisation": {"cosa": "IMU"}},
        headers=sender.headers,
    )
    problems = shown.json()["variants"]["it"]["problems"]
    assert problems == ["the markdown is 13 characters; IO takes 80 to 10000"]


async def test_bad_templates_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    broken_cta = dict(ITALIAN, markdown="---\nit:\n  cta_1:\n    text: Prenota\n---\n" + "x" * 90)
    cases = {
        "a malformed CTA block": (
            draft(variants={"it": broken_cta}),
            400,
            "it.cta_1.action is required",
        ),
        "a broken slot": (
            draft(variants={"it": dict(ITALIAN, subject="Ciao ((nome)")}),
            400,
            "'Ciao ((nome)' is neither",
        ),
        "no Italian variant": (draft(variants={"en": ENGLISH}), 400, "root.variants.it"),
        "an unknown language": (
            draft(variants={"it": ITALIAN, "fr": ENGLISH}),
            400,
            "root.variants.fr",
        ),
        "a name both value and flag": (
            draft(variants={"it": dict(ITALIAN, subject="((urgente)) documento pronto")}),
            400,
            "used both as a value and as a flag: urgente",
        ),
        "a subject over the bound": (
            draft(variants={"it": dict(ITALIAN, subject="x" * 241)}),
            400,
            "root.variants.it.subject",
        ),
    }
    for case, (body, status, detail) in cases.items():
        response = await client.post(TEMPLATES, json=body, headers=sender.headers)
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json", case
        assert detail in response.json()["detail"], (case, response.json())
    huge = draft(variants={"it": dict(ITALIAN, markdown="x" * 2 * 1024 * 1024)})
    too_large = await client.post(TEMPLATES, json=huge, headers=sender.headers)
    assert too_large.status_code == 413
    assert too_large.json()["title"] == "Request entity too large"
    assert await total(client, sender) == 0


async def test_a_key_is_unique_per_service_and_never_changes(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    created = await create(client, sender)
    again = await client.post(TEMPLATES, json=draft(), headers=sender.headers)
    assert again.status_code == 409
    renamed = await client.put(
        f"{TEMPLATES}/{created['id']}", json=draft(key="altro"), headers=sender.headers
    )
    assert renamed.status_code == 409
    assert await total(client, sender) == 1
    other = await factory.sender()
    assert (await create(client, other))["key"] == "documento.pronto"


async def test_a_secure_service_keeps_placeholders_out_of_subjects(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender(require_secure_channels=True)
    named = draft(variants={"it": dict(ITALIAN, subject="((nome)), il documento è pronto")})
    refused = await client.post(TEMPLATES, json=named, headers=sender.headers)
    assert refused.status_code == 400
    assert refused.json()["title"] == "Sensitive data never in the title"
    assert "variants.it.subject holds ((nome))" in refused.json()["detail"]
    assert await total(client, sender) == 0
    created = await create(client, sender)  # the body may hold values
    update = await client.put(f"{TEMPLATES}/{created['id']}", json=named, headers=sender.headers)
    assert update.status_code == 400
    assert update.json()["title"] == "Sensitive data never in the title"
    versions = await client.get(f"{TEMPLATES}/{created['id']}/versions", headers=sender.headers)
    assert len(versions.json()["items"]) == 1
