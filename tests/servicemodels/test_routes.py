"""``GET /api/v1/service-models[/{model_id}]``: public, in the caller's language."""

from __future__ import annotations

import httpx
import pytest

from civio.servicemodels import catalogue

BASE = "/api/v1/service-models"


async def test_the_list_needs_no_key_and_shows_every_model_in_italian(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(BASE)
    assert response.status_code == 200
    body = response.json()
    assert body["language"] == "it"
    assert [item["id"] for item in body["items"]] == list(catalogue.all_models())
    elezioni = next(item for item in body["items"] if item["id"] == "elezioni")
    assert elezioni["name"] == "Elezioni"
    assert elezioni["topic_id"] == 12
    assert elezioni["topic"] == "Servizi elettorali"
    assert elezioni["sensitive"] is True
    assert elezioni["message_count"] == 5
    assert elezioni["description"].startswith("Quando si vota")


@pytest.mark.parametrize(
    ("query", "headers", "name", "language"),
    [
        ({"lang": "en"}, {}, "Elections", "en"),
        ({"lang": "de"}, {"Accept-Language": "en"}, "Wahlen", "de"),  # the query wins
        ({}, {"Accept-Language": "de-CH, en;q=0.8"}, "Wahlen", "de"),
        ({}, {"Accept-Language": "fr-FR, en;q=0.5, de;q=0.9"}, "Wahlen", "de"),
        ({}, {"Accept-Language": "fr, es"}, "Elezioni", "it"),
        ({}, {"Accept-Language": "en;q=0"}, "Elezioni", "it"),
    ],
)
async def test_the_list_speaks_the_asked_language(
    client: httpx.AsyncClient,
    query: dict[str, str],
    headers: dict[str, str],
    name: str,
    language: str,
) -> None:
    response = await client.get(BASE, params=query, headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["language"] == language
    assert next(i for i in body["items"] if i["id"] == "elezioni")["name"] == name


async def test_an_unsupported_lang_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(BASE, params={"lang": "fr"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Invalid lang"


async def test_one_model_in_full(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/elezioni")
    assert response.status_code == 200
    model = response.json()
    assert model["id"] == "elezioni"
    assert model["require_secure_channels"] is True
    assert set(model["cards"]) == {"it", "en", "de"}
    assert len(model["messages"]) == 5
    appointment = model["messages"][4]
    assert appointment["key"] == "conferma_appuntamento"
    assert appointment["due_date"] is True
    assert appointment["payment_notice"] is False
    assert appointment["cta_action"] == "iohandledlink://((url_prenotazione))"
    assert appointment["texts"]["de"]["cta_label"] == "Termin absagen"
    assert "((numero_prenotazione))" in appointment["texts"]["it"]["markdown"]
    assert "cta_label" not in model["messages"][0]["texts"]["it"]  # none: left out


@pytest.mark.parametrize("model_id", ["bonus", "elezioni-europee", "x" * 64])
async def test_an_unknown_model_is_a_404_problem(client: httpx.AsyncClient, model_id: str) -> None:
    response = await client.get(f"{BASE}/{model_id}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Service model not found"


@pytest.mark.parametrize("model_id", ["Elezioni", "ele_zioni", "x" * 65])
async def test_a_malformed_model_id_is_a_400_problem(
    client: httpx.AsyncClient, model_id: str
) -> None:
    response = await client.get(f"{BASE}/{model_id}")
    assert response.status_code == 400
    assert response.json()["title"] == "Invalid model_id"
