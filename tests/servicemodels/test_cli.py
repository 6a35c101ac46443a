"""``civio service-model list|show`` and ``civio service create --from-model``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from civio.cli import app
from civio.core.config import Settings
from civio.servicemodels import catalogue
from tests.factories import cli_env

runner = CliRunner()


@pytest.fixture
def civio(settings: Settings):  # type: ignore[no-untyped-def]
    env = cli_env(settings, COLUMNS="200")

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout) if code == 0 and "--json" in args else result.output

    return run


def test_list_prints_every_model(civio) -> None:  # type: ignore[no-untyped-def]
    items = civio("service-model", "list", "--json")
    assert [item["id"] for item in items] == list(catalogue.all_models())
    elezioni = items[0]
    assert elezioni["name"] == "Elezioni"
    assert elezioni["sensitive"] is True
    assert elezioni["message_count"] == 5
    table = civio("service-model", "list")
    assert "elezioni" in table
    assert "Servizi elettorali" in table


def test_show_prints_the_card_and_messages_in_the_asked_language(civio) -> None:  # type: ignore[no-untyped-def]
    shown = civio("service-model", "show", "elezioni", "--lang", "de")
    assert "Wahlen" in shown
    assert "require_secure_channels): yes" in shown
    assert "conferma_appuntamento" in shown
    assert "Termin absagen" in shown
    assert "Dein Termin ist bestätigt" in shown
    italian = civio("service-model", "show", "elezioni")
    assert "Il tuo appuntamento è confermato" in italian


def test_show_json_is_the_whole_model(civio) -> None:  # type: ignore[no-untyped-def]
    model = civio("service-model", "show", "elezioni", "--json")
    assert model["id"] == "elezioni"
    assert set(model["cards"]) == {"it", "en", "de"}
    assert [m["key"] for m in model["messages"]][-1] == "conferma_appuntamento"


def test_show_refuses_an_unknown_model_or_language(civio) -> None:  # type: ignore[no-untyped-def]
    assert "Service model not found" in civio("service-model", "show", "bonus", code=1)
    assert "--lang must be it, en or de" in civio(
        "service-model", "show", "elezioni", "--lang", "fr", code=2
    )


FROM_MODEL = (
    "service",
    "create",
    "--from-model",
    "elezioni",
    "--organization-name",
    "Comune di Prova",
    "--organization-fiscal-code",
    "12345678901",
    "--json",
)


def test_create_from_model_takes_the_models_card_and_flags(civio) -> None:  # type: ignore[no-untyped-def]
    created = civio(*FROM_MODEL)
    elezioni = catalogue.get_model("elezioni")
    assert elezioni is not None
    assert created["service_name"] == "Elezioni"
    assert created["organization_name"] == "Comune di Prova"
    assert created["require_secure_channels"] is True
    assert created["service_metadata"]["topic_id"] == 12
    assert created["service_metadata"]["description"] == elezioni.cards["it"].description
    assert len(created["primary_key"]) == 64
    stored = civio("service", "show", created["service_id"], "--json")
    assert stored["service_name"] == "Elezioni"
    assert stored["require_secure_channels"] is True
    assert stored["service_metadata"]["topic_id"] == 12


def test_create_from_model_keeps_a_given_name(civio) -> None:  # type: ignore[no-untyped-def]
    created = civio(*FROM_MODEL, "--name", "Elezioni 2026")
    assert created["service_name"] == "Elezioni 2026"
    assert created["require_secure_channels"] is True


def test_create_refuses_an_unknown_model_and_a_missing_name(civio) -> None:  # type: ignore[no-untyped-def]
    unknown = list(FROM_MODEL)
    unknown[unknown.index("elezioni")] = "bonus"
    assert "Service model not found" in civio(*unknown, code=2)
    bare = [a for a in FROM_MODEL if a not in ("--from-model", "elezioni")]
    assert "--name is required" in civio(*bare, code=2)
