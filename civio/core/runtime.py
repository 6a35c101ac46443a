"""What one civio process holds: settings, the database engine, the key ring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from civio.core.config import Settings
from civio.core.crypto import KeyRing, load_master_key
from civio.core.db import database_url, make_engine, make_sessionmaker
from civio.core.throttle import FailureThrottle


@dataclass
class Runtime:
    settings: Settings
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    # The client of CIVIO_REDIS_URL (shared rate limits), when set.
    redis: Redis | None = None
    # Per-process helpers that domains attach to the runtime (for example the accept path's
    # group committer), keyed by the owning module's name.
    components: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, pool_size: int = 20) -> Runtime:
        url = database_url(settings)
        engine = make_engine(url, pool_size=pool_size)
        return cls(
            settings=settings,
            url=url,
            engine=engine,
            sessions=make_sessionmaker(engine),
            keyring=KeyRing(load_master_key(settings)),
            redis=redis_client(settings.redis_url) if settings.redis_url else None,
        )

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def failure_throttle(runtime: Runtime, owner: str) -> FailureThrottle:
    """The process's throttle of failed credentials for one guarded entry point."""
    key = f"{owner}.failure_throttle"
    throttle = runtime.components.get(key)
    if throttle is None:
        settings = runtime.settings
        throttle = runtime.components[key] = FailureThrottle(
            settings.credential_failure_limit, settings.credential_failure_window_seconds
        )
    assert isinstance(throttle, FailureThrottle)
    return throttle


def redis_client(url: str) -> Redis:
    """A Redis client that gives up within about a second, so that a Redis outage answers
    503 promptly rather than holding every request (it connects on first use)."""
    return Redis.from_url(
        url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), retries=2),
    )


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def session_dependency(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed after the handler, rolled back on error."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session, session.begin():
        yield session
