"""Dev mode only when asked for or obviously local (issue: a forgotten CIVIO_ENV must not
open every inbox through the test login)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from civio.core.config import (
    MIN_ADMIN_TOKEN_LENGTH,
    Environment,
    Settings,
    decide_mode,
    dev_beyond_loopback,
)


def _settings(**values: object) -> Settings:
    # Built from explicit values only, whatever the test process's environment holds.
    return Settings.model_validate({"data_dir": Path("/nonexistent"), **values})


@pytest.mark.parametrize(
    ("values", "host", "expected"),
    [
        ({}, "127.0.0.1", Environment.dev),
        ({}, "::1", Environment.dev),
        ({}, "localhost", Environment.dev),
        ({}, None, Environment.dev),
        ({}, "0.0.0.0", Environment.production),
        ({}, "192.0.2.10", Environment.production),
        ({}, "civio.example.org", Environment.production),
        ({"database_url": "postgresql://db.internal/civio"}, "127.0.0.1", Environment.production),
        ({"database_url": "postgresql://db.internal/civio"}, None, Environment.production),
        ({"env": "production"}, "127.0.0.1", Environment.production),
        ({"env": "dev"}, "0.0.0.0", Environment.dev),
        ({"env": "dev", "database_url": "postgresql://x/y"}, None, Environment.dev),
    ],
)
def test_mode(values: dict[str, object], host: str | None, expected: Environment) -> None:
    mode = decide_mode(_settings(**values), host)
    assert mode.env == expected
    assert mode.reason


def test_undecided_settings_behave_as_production() -> None:
    assert not _settings().is_dev


def test_the_reason_names_what_decided() -> None:
    assert "0.0.0.0" in decide_mode(_settings(), "0.0.0.0").reason
    external = decide_mode(_settings(database_url="postgresql://db/civio"), "127.0.0.1")
    assert "CIVIO_DATABASE_URL" in external.reason
    assert "CIVIO_ENV=production" in decide_mode(_settings(env="production")).reason


def test_short_admin_tokens_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least"):
        _settings(admin_token="x" * (MIN_ADMIN_TOKEN_LENGTH - 1))
    assert _settings(admin_token="x" * MIN_ADMIN_TOKEN_LENGTH).admin_token


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),
        ("10.1.2.3", True),
    ],
)
def test_dev_mode_is_flagged_only_where_others_can_reach_it(host: str, warned: bool) -> None:
    dev_on_external_db = Settings(env="dev", database_url="postgresql://db.internal/civio")
    assert dev_beyond_loopback(dev_on_external_db, host) is warned
    production = Settings(env="production", database_url="postgresql://db.internal/civio")
    assert dev_beyond_loopback(production, host) is False
