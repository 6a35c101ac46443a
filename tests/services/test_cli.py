"""The operator CLI: ``civio service …`` and ``civio citizen …`` print IO's shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from civio.cli import app
from civio.core.config import Settings
from tests.factories import cli_env, random_fiscal_code

runner = CliRunner()


@pytest.fixture
def civio(settings: Settings):  # type: ignore[no-untyped-def]
    env = cli_env(settings)

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout) if code == 0 and "--json" in args else result.output

    return run


CREATE = (
    "service",
    "create",
    "--name",
    "Anagrafe",
    "--organization-name",
    "Comune di Prova",
    "--organization-fiscal-code",
    "12345678901",
    "--json",
)


def test_service_create_prints_service_with_subscription_keys(civio) -> None:  # type: ignore[no-untyped-def]
    service = civio(*CREATE)
    assert service["service_name"] == "Anagrafe"
    assert service["organization_name"] == "Comune di Prova"
    assert service["groups"] == [
        "ApiLimitedMessageWrite",
        "ApiInfoRead",
        "ApiMessageRead",
        "ApiLimitedProfileRead",
    ]
    assert service["authorized_recipients"] == ["AAAAAA00A00A000A"]
    assert service["max_allowed_payment_amount"] == 0
    assert service["require_secure_channels"] is False
    assert service["is_visible"] is False
    assert service["service_metadata"] == {"scope": "NATIONAL", "category": "STANDARD"}
    assert len(service["primary_key"]) == 64
    assert len(service["secondary_key"]) == 64
    assert service["id"] == service["service_id"]


def test_service_create_with_every_option(civio) -> None:  # type: ignore[no-untyped-def]
    fc = random_fiscal_code()
    service = civio(
        *CREATE,
        "--department-name",
        "Servizi demografici",
        "--group",
        "ApiMessageWrite",
        "--group",
        "ApiMessageRead",
        "--authorized-recipient",
        fc,
        "--authorized-cidr",
        "192.0.2.0/24",
        "--max-allowed-payment-amount",
        "150000",
        "--require-secure-channels",
        "--special",
        "--visible",
        "--owner-email",
        "ufficio@comune.example.org",
    )
    assert service["groups"] == ["ApiMessageWrite", "ApiMessageRead"]
    assert service["authorized_recipients"] == ["AAAAAA00A00A000A", fc]
    assert service["authorized_cidrs"] == ["192.0.2.0/24"]
    assert service["max_allowed_payment_amount"] == 150000
    assert service["require_secure_channels"] is True
    assert service["is_visible"] is True
    assert service["service_metadata"]["category"] == "SPECIAL"
    assert service["owner_email"] == "ufficio@comune.example.org"
    assert service["department_name"] == "Servizi demografici"


def test_service_lifecycle_commands(civio) -> None:  # type: ignore[no-untyped-def]
    sid = civio(*CREATE)["service_id"]
    shown = civio("service", "show", sid, "--json")
    assert "primary_key" not in shown
    assert "secondary_key" not in shown
    granted = civio("service", "grant", sid, "ApiMessageWrite", "ApiNoRateLimit", "--json")
    assert {"ApiMessageWrite", "ApiNoRateLimit"} <= set(granted["groups"])
    revoked = civio("service", "revoke", sid, "ApiNoRateLimit", "--json")
    assert "ApiNoRateLimit" not in revoked["groups"]
    updated = civio(
        "service", "update", sid, "--max-allowed-payment-amount", "900", "--visible", "--json"
    )
    assert updated["max_allowed_payment_amount"] == 900
    assert updated["is_visible"] is True
    assert updated["service_name"] == "Anagrafe"
    renewed = civio("service", "keys", "regenerate", sid, "secondary", "--json")
    assert len(renewed["secondary_key"]) == 64
    assert "primary_key" not in renewed


def test_service_cli_rejects_bad_input(civio) -> None:  # type: ignore[no-untyped-def]
    out = civio(
        "service",
        "create",
        "--name",
        "X",
        "--organization-name",
        "Y",
        "--organization-fiscal-code",
        "123",
        code=2,
    )
    assert "organization_fiscal_code" in out
    sid = civio(*CREATE)["service_id"]
    assert "Invalid groups" in civio("service", "grant", sid, "ApiEverything", code=1)
    assert "Service not found" in civio("service", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", code=1)
    assert "primary" in civio("service", "keys", "regenerate", sid, "tertiary", code=2)


def test_citizen_create_and_show(civio) -> None:  # type: ignore[no-untyped-def]
    fc = random_fiscal_code()
    created = civio("citizen", "create", fc, "--email", "mario@example.org", "--json")
    assert created["fiscal_code"] == fc
    assert created["mode"] == "AUTO"
    assert created["is_inbox_enabled"] is True
    assert created["email"] == "mario@example.org"
    assert created["is_email_validated"] is True
    assert civio("citizen", "show", fc, "--json") == created


def test_citizen_blocks_per_mode(civio) -> None:  # type: ignore[no-untyped-def]
    sid = civio(*CREATE)["service_id"]
    legacy = civio(
        "citizen", "create", random_fiscal_code(), "--mode", "LEGACY", "--block", sid, "--json"
    )
    assert legacy["blocked_inbox_or_channels"] == {sid: ["INBOX"]}
    manual = civio(
        "citizen",
        "create",
        random_fiscal_code(),
        "--mode",
        "MANUAL",
        "--block",
        sid,
        "--no-inbox",
        "--json",
    )
    assert manual["blocked_services"] == [sid]
    assert manual["blocked_inbox_or_channels"] == {}
    assert manual["is_inbox_enabled"] is False


def test_citizen_cli_rejects_bad_input(civio) -> None:  # type: ignore[no-untyped-def]
    assert "not a valid fiscal code" in civio("citizen", "create", "rssmra80a01h501u", code=2)
    assert "--mode" in civio("citizen", "create", random_fiscal_code(), "--mode", "X", code=2)
    assert "Profile not found" in civio("citizen", "show", random_fiscal_code(), code=1)
