"""``civio serve`` is production unless clearly local: an operator who forgets CIVIO_ENV
gets no test login, and production will not start without its master key."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from civio.core.config import Settings
from tests.e2e.conftest import CIVIO, ROOT, free_port, wait_ready
from tests.factories import ADMIN_TOKEN, random_fiscal_code


def _bare_env(**values: str) -> dict[str, str]:
    """The environment of an operator who set nothing but ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVIO_")}
    env["CIVIO_DATA_DIR"] = tempfile.mkdtemp(prefix="civio-safe-", dir="/tmp")
    env.update(values)
    return env


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CIVIO, "serve", "--port", str(free_port()), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.e2e
def test_a_public_address_means_production_which_needs_the_master_key() -> None:
    env = _bare_env()
    done = _serve(env, "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "production mode (0.0.0.0 is not a loopback address)" in done.stderr
    assert "CIVIO_MASTER_KEY" in done.stderr
    assert not (Path(env["CIVIO_DATA_DIR"]) / "master.key").exists(), "no dev key generated"


@pytest.mark.e2e
def test_an_external_database_means_production(settings: Settings) -> None:
    done = _serve(_bare_env(CIVIO_DATABASE_URL=settings.database_url), "--host", "127.0.0.1")
    assert done.returncode == 2
    assert "production mode (CIVIO_DATABASE_URL names an external database)" in done.stderr


@pytest.mark.e2e
def test_a_short_admin_token_is_refused_at_start() -> None:
    done = _serve(_bare_env(CIVIO_ADMIN_TOKEN="admin"), "--host", "127.0.0.1")
    assert done.returncode == 2
    assert "CIVIO_ADMIN_TOKEN" in done.stderr
    assert "at least 32 characters" in done.stderr


@pytest.fixture(scope="module")
def production_server(settings: Settings) -> Iterator[tuple[str, Path]]:
    """A deployment that forgot CIVIO_ENV: external database, master key, admin token."""
    env = _bare_env(
        CIVIO_DATABASE_URL=settings.database_url,
        CIVIO_MASTER_KEY=settings.master_key,
        CIVIO_ADMIN_TOKEN=ADMIN_TOKEN,
        CIVIO_LOG_LEVEL="WARNING",
    )
    port = free_port()
    log = Path(env["CIVIO_DATA_DIR"]) / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [CIVIO, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.e2e
def test_a_forgotten_civio_env_serves_no_test_login(
    production_server: tuple[str, Path], settings: Settings
) -> None:
    url, log = production_server
    banner = log.read_text()
    assert "(production: CIVIO_DATABASE_URL names an external database)" in banner
    assert "test-login" not in banner
    assert "Ocp-Apim-Subscription-Key" not in banner
    for password in (settings.test_login_password, "civio-dev-password"):
        login = httpx.post(
            f"{url}/api/auth/v1/test-login",
            json={"username": random_fiscal_code(), "password": password},
        )
        assert login.status_code == 404
