"""Wrong test-login passwords and wrong admin tokens are throttled: per client, and for the
test login also per username, so neither one client nor many can keep guessing."""

from __future__ import annotations

import httpx
import pytest

from civio.app import create_app
from civio.core.config import Settings
from civio.core.runtime import Runtime
from tests.factories import ADMIN, client_with, random_fiscal_code

LIMIT = 3
SOME_SERVICE = "/admin/v1/services/01JNOSUCHSERVICE0000000000"


@pytest.fixture
def strict(settings: Settings) -> Settings:
    return settings.model_copy(update={"credential_failure_limit": LIMIT})


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/auth/v1/test-login", json={"username": username, "password": password}
    )


async def test_a_client_that_keeps_guessing_is_refused_even_the_right_password(
    strict: Settings, runtime: Runtime
) -> None:
    async with client_with(strict, runtime, peer=("198.51.100.20", 4000)) as client:
        for _ in range(LIMIT):
            wrong = await _login(client, random_fiscal_code(), "guess")
            assert wrong.status_code == 401
        refused = await _login(client, random_fiscal_code(), strict.test_login_password)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["title"] == "Too many requests"


async def test_guesses_for_one_username_from_many_clients_are_refused(
    strict: Settings, runtime: Runtime
) -> None:
    target = random_fiscal_code()
    app = create_app(strict, runtime=runtime, run_worker=False)

    def from_peer(host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(host, 4000))
        return httpx.AsyncClient(transport=transport, base_url="http://civio.test")

    async with app.router.lifespan_context(app):
        for attempt in range(LIMIT):
            async with from_peer(f"198.51.100.{30 + attempt}") as client:
                assert (await _login(client, target, "guess")).status_code == 401
        async with from_peer("198.51.100.99") as client:
            assert (await _login(client, target, strict.test_login_password)).status_code == 429
            other = await _login(client, random_fiscal_code(), strict.test_login_password)
            assert other.status_code == 200, "another username from a fresh client is unaffected"


async def test_wrong_admin_tokens_are_throttled_per_client(
    strict: Settings, runtime: Runtime
) -> None:
    async with client_with(strict, runtime, peer=("198.51.100.40", 4000)) as client:
        for _ in range(LIMIT):
            wrong = await client.get(SOME_SERVICE, headers={"Authorization": "Bearer " + "x" * 40})
            assert wrong.status_code == 401
        assert (await client.get(SOME_SERVICE, headers=ADMIN)).status_code == 429
    async with client_with(strict, runtime, peer=("198.51.100.41", 4000)) as client:
        assert (await client.get(SOME_SERVICE, headers=ADMIN)).status_code == 404
