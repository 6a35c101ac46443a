"""One rate limit per owner across every process of a deployment (PostgreSQL or Redis).

Each "instance" below is an app on its own Runtime (its own connection pool, its own
gateway), as a second ``civio serve`` process would be; the last test runs
``civio serve --processes 2`` over a real socket.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from civio.app import create_app
from civio.core.config import Settings
from civio.core.runtime import Runtime
from civio.services.models import RateLimitWindow
from civio.services.ratelimit import PostgresWindows, RateLimiter
from tests.e2e.conftest import CIVIO, civio_env, free_port, wait_ready
from tests.factories import Factory, random_fiscal_code, valid_message
from tests.messages.test_submit import assert_problem


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis server on a free port, without persistence, for this test session."""
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (apt-get install -y redis-server)"
    directory = Path(tempfile.mkdtemp(prefix="civio-redis-", dir="/tmp"))
    port = free_port()
    options = ["--bind", "127.0.0.1", "--dir", str(directory), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [server, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, "redis-server exited"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["postgresql", "redis"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The test settings, counting in PostgreSQL (the default) or in Redis."""
    if request.param == "redis":
        return settings.model_copy(update={"redis_url": request.getfixturevalue("redis_url")})
    return settings


@asynccontextmanager
async def instances(settings: Settings, count: int = 2) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``count`` apps on separate runtimes sharing one database: as many server processes."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            runtime = Runtime.build(settings, pool_size=2)
            stack.push_async_callback(runtime.close)
            app = create_app(settings, runtime=runtime, run_worker=False)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
            client = httpx.AsyncClient(transport=transport, base_url="http://civio.test")
            clients.append(await stack.enter_async_context(client))
        yield clients


async def round_robin(
    clients: list[httpx.AsyncClient], headers: dict[str, str], calls: int
) -> list[httpx.Response]:
    """``calls`` profile lookups, one instance after the other (404: allowed, unknown)."""
    url = f"/api/v1/profiles/{random_fiscal_code()}"
    return [await clients[i % len(clients)].get(url, headers=headers) for i in range(calls)]


def allowed(responses: list[httpx.Response]) -> int:
    return sum(r.status_code != 429 for r in responses)


def assert_limited(response: httpx.Response, window_seconds: int) -> None:
    assert_problem(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds
    assert response.headers["x-rate-limit-remaining"] == "0"
    assert response.headers["x-rate-limit-retry-after"] == response.headers["Retry-After"]


async def test_two_instances_together_allow_exactly_the_owners_limit(
    store_settings: Settings, factory: Factory
) -> None:
    small = store_settings.model_copy(
        update={"rate_limit_calls": 5, "rate_limit_window_seconds": 60}
    )
    sender = await factory.sender()
    async with instances(small) as clients:
        responses = await round_robin(clients, sender.headers, 24)
    assert allowed(responses) == 5
    first_refused = next(i for i, r in enumerate(responses) if r.status_code == 429)
    assert all(r.status_code == 429 for r in responses[first_refused + 2 :])
    for response in responses[-2:]:  # the last answer of each instance
        assert_limited(response, 60)


async def test_the_shared_window_resets(store_settings: Settings, factory: Factory) -> None:
    short = store_settings.model_copy(
        update={"rate_limit_calls": 3, "rate_limit_window_seconds": 2}
    )
    sender = await factory.sender()
    async with instances(short) as clients:
        first = await round_robin(clients, sender.headers, 10)
        assert allowed(first) == 3
        assert_limited(first[-1], 2)
        await asyncio.sleep(float(first[-1].headers["Retry-After"]))
        second = await round_robin(clients, sender.headers, 10)
        assert allowed(second) == 3


async def test_group_limits_hold_across_instances(
    store_settings: Settings, factory: Factory
) -> None:
    limits = store_settings.model_copy(
        update={"rate_limit_calls": 2, "rate_limit_calls_250": 4, "rate_limit_window_seconds": 60}
    )
    profile_read = ["ApiMessageWrite", "ApiLimitedProfileRead"]
    raised = await factory.sender(groups=[*profile_read, "ApiRateLimit250"])
    unlimited = await factory.sender(groups=[*profile_read, "ApiNoRateLimit"])
    async with instances(limits) as clients:
        assert allowed(await round_robin(clients, raised.headers, 12)) == 4
        never_limited = await round_robin(clients, unlimited.headers, 12)
    assert [r.status_code for r in never_limited] == [404] * 12


async def test_concurrent_calls_on_both_instances_never_pass_the_limit(
    store_settings: Settings, factory: Factory
) -> None:
    small = store_settings.model_copy(
        update={"rate_limit_calls": 10, "rate_limit_window_seconds": 60}
    )
    sender = await factory.sender()
    url = f"/api/v1/profiles/{random_fiscal_code()}"
    async with instances(small) as clients:
        burst = await asyncio.gather(
            *(clients[i % 2].get(url, headers=sender.headers) for i in range(30))
        )
        assert allowed(list(burst)) <= 10
        # Calls leased during the burst and not yet spent are spent by the calls that follow.
        rest = await round_robin(clients, sender.headers, 24)
    assert allowed(list(burst)) + allowed(rest) == 10


async def test_an_unreachable_redis_answers_503(settings: Settings, factory: Factory) -> None:
    nowhere = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    sender = await factory.sender()
    async with instances(nowhere, count=1) as (client,):
        response = await client.post(
            f"/api/v1/messages/{random_fiscal_code()}", json=valid_message(), headers=sender.headers
        )
    assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) >= 1


async def test_limiter_counts_a_fixed_window_per_owner(runtime: Runtime) -> None:
    limiter = RateLimiter(PostgresWindows(runtime.engine), window_seconds=5)
    owner = f"owner-{random_fiscal_code()}"
    verdicts = [await limiter.hit(owner, 3) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert (await limiter.hit(f"other-{owner}", 3)).allowed  # another owner, another window


async def test_ended_windows_are_pruned(runtime: Runtime) -> None:
    store = PostgresWindows(runtime.engine)
    owner = f"owner-{random_fiscal_code()}"
    await store.take(owner, 1, window_seconds=1)
    query = select(RateLimitWindow.owner_id).where(RateLimitWindow.owner_id == owner)
    async with runtime.engine.connect() as connection:
        assert (await connection.execute(query)).all()
        await store.prune()
        assert (await connection.execute(query)).all()  # still running: kept
        await asyncio.sleep(1.05)
        await store.prune()
        assert not (await connection.execute(query)).all()


@pytest.mark.e2e
async def test_serve_with_two_processes_allows_the_limit_once(
    settings: Settings, factory: Factory
) -> None:
    sender = await factory.sender()
    port = free_port()
    env = civio_env(settings, CIVIO_RATE_LIMIT_CALLS="5", CIVIO_RATE_LIMIT_WINDOW_SECONDS="60")
    command = ["serve", "--host", "127.0.0.1", "--port", str(port), "--processes", "2"]
    server = subprocess.Popen(
        [CIVIO, *command, "--no-worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server, timeout=60)

        # Four callers, each opening a new connection per call: while one server process
        # is busy with a call, the other accepts the next connection, so both take calls.
        async def caller() -> list[int]:
            codes = []
            for _ in range(10):
                async with httpx.AsyncClient(base_url=url) as client:
                    response = await client.post(
                        f"/api/v1/messages/{random_fiscal_code()}",
                        json=valid_message(),
                        headers=sender.headers,
                    )
                codes.append(response.status_code)
            return codes

        results = await asyncio.gather(*(caller() for _ in range(4)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert sorted(code for codes in results for code in codes) == [201] * 5 + [429] * 35
