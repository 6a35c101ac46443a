"""Forwarded headers over a real socket: only ``CIVIO_TRUSTED_PROXIES`` makes them count.

uvicorn believes ``X-Forwarded-For``/``-Proto`` from 127.0.0.1 unless told otherwise, so these
tests run civio's app in uvicorn with civio's own server options (``SERVER_OPTIONS``), on a
loopback socket, where a local client could otherwise pose as any address.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from civio.app import create_app
from civio.core.config import Settings
from civio.core.serving import SERVER_OPTIONS
from tests.e2e.conftest import free_port
from tests.factories import Factory, random_fiscal_code, valid_message
from tests.messages.test_submit import assert_problem

SPOOFED = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """civio's app served by uvicorn, with civio's server options, in a thread."""
    app = create_app(settings, run_worker=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), **SERVER_OPTIONS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="civio-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def untrusting_url(settings: Settings) -> Iterator[str]:
    with serving(settings.model_copy(update={"trusted_proxies": []})) as url:
        yield url


@pytest.fixture(scope="module")
def trusting_url(settings: Settings) -> Iterator[str]:
    with serving(settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]})) as url:
        yield url


async def submit_from(url: str, key: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(
            f"/api/v1/messages/{random_fiscal_code()}",
            json=valid_message(),
            headers={"Ocp-Apim-Subscription-Key": key, **headers},
        )


async def test_x_forwarded_for_from_loopback_is_ignored_unless_loopback_is_a_trusted_proxy(
    factory: Factory, untrusting_url: str, trusting_url: str
) -> None:
    sender = await factory.sender(cidrs=["198.51.100.0/24"])
    spoofed = await submit_from(untrusting_url, sender.key, SPOOFED)
    assert_problem(spoofed, 403, "You are not allowed here")
    proxied = await submit_from(trusting_url, sender.key, SPOOFED)
    assert proxied.status_code == 201, proxied.text


async def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(
    untrusting_url: str, trusting_url: str
) -> None:
    # Strict-Transport-Security is sent only on requests that arrived over HTTPS.
    async with httpx.AsyncClient() as client:
        spoofed = await client.get(f"{untrusting_url}/healthz", headers=SPOOFED)
        plain = await client.get(f"{trusting_url}/healthz")
        proxied = await client.get(f"{trusting_url}/healthz", headers=SPOOFED)
    assert "strict-transport-security" not in spoofed.headers
    assert "strict-transport-security" not in plain.headers
    assert proxied.headers["strict-transport-security"].startswith("max-age=")


async def test_no_redirect_is_built_from_the_clients_host_header(untrusting_url: str) -> None:
    async with httpx.AsyncClient(base_url=untrusting_url) as client:
        for path in ("/healthz/", "/api/v1/profiles/", "/api/catalog/v1/services/"):
            response = await client.get(path, headers={"Host": "attacker.example", **SPOOFED})
            assert "attacker.example" not in response.headers.get("location", ""), path
            assert "attacker.example" not in response.text, path
            assert response.status_code in (401, 404), (path, response.status_code)
