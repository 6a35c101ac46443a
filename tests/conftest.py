"""Test infrastructure: one real PostgreSQL cluster per xdist worker, migrated once.

Tests do not share rows they care about: each creates its own services (own keys, own
owner, own rate-limit window) and its own random fiscal codes, so no truncation is needed
between them. HTTP goes through the ASGI app (httpx), with the app's real lifespan.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi import FastAPI

from civio.app import create_app
from civio.core.config import Environment, Settings
from civio.core.embedded import start_cluster
from civio.core.migrate import upgrade
from civio.core.runtime import Runtime
from tests.factories import ADMIN_TOKEN, Factory


@pytest.fixture(autouse=True)
def isolated_logging_config() -> Iterator[None]:
    """A CLI command run in-process reconfigures structlog (level WARNING in the CLI tests);
    later tests in the same process must still see the configuration they started with."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    # Short path: the Unix socket lives inside the data directory.
    base = Path(tempfile.mkdtemp(prefix=f"civio-{worker}-", dir="/tmp"))
    # civio's own start-up path: on a fresh machine both xdist workers get here at once.
    server = start_cluster(base / "pg")
    server.psql("CREATE DATABASE civio_test;")
    url = server.get_uri("civio_test")
    upgrade(url)
    yield url
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        env=Environment.dev,
        admin_token=ADMIN_TOKEN,
        test_login_password="test-login-password-for-the-suite",
        credential_failure_limit=1_000_000,
        run_worker=False,
        service_cache_seconds=0.0,
        log_json=True,
    )


@pytest.fixture(scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.build(settings, pool_size=10)
    yield rt
    await rt.close()


@pytest.fixture(scope="session")
async def app(settings: Settings, runtime: Runtime) -> AsyncIterator[FastAPI]:
    application = create_app(settings, runtime=runtime, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://civio.test") as c:
        yield c


@pytest.fixture
def factory(runtime: Runtime, settings: Settings) -> Factory:
    return Factory(runtime, settings)
