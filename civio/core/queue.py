"""The job queue: pgqueuer on the same PostgreSQL, jobs enqueued in the caller's transaction.

``enqueue`` runs on the session's own asyncpg connection, so the job row commits or rolls
back together with the data it refers to. Jobs carry ids only; handlers re-read the rows
and must be idempotent (delivery is at-least-once: a worker killed mid-job leaves the job
``picked`` with a stale heartbeat, and another worker picks it up again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import structlog
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.db import asyncpg_dsn
from civio.core.runtime import Runtime

log = structlog.get_logger(__name__)

JobHandler = Callable[["Runtime", dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    handler: JobHandler


_registry: dict[str, TaskSpec] = {}


def task(name: str) -> Callable[[JobHandler], JobHandler]:
    """Register a job handler under a stable dotted name (domain + verb)."""

    def register(handler: JobHandler) -> JobHandler:
        if name in _registry and _registry[name].handler is not handler:
            raise RuntimeError(f"task {name!r} registered twice")
        _registry[name] = TaskSpec(name, handler)
        return handler

    return register


def registered_tasks() -> dict[str, TaskSpec]:
    return dict(_registry)


async def raw_connection(session: AsyncSession) -> asyncpg.Connection:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: dict[str, Any],
    *,
    delay: timedelta | None = None,
) -> None:
    """Write a job in the session's current transaction."""
    queries = Queries(AsyncpgDriver(await raw_connection(session)))
    await queries.enqueue(name, orjson.dumps(payload), 0, delay)


async def enqueue_many(session: AsyncSession, name: str, payloads: list[dict[str, Any]]) -> None:
    if not payloads:
        return
    queries = Queries(AsyncpgDriver(await raw_connection(session)))
    await queries.enqueue(
        [name] * len(payloads), [orjson.dumps(p) for p in payloads], [0] * len(payloads)
    )


class Worker:
    """Runs every registered task until ``stop()``; one asyncpg connection for the queue."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self._runtime = runtime
        self._batch_size = settings.worker_batch_size
        self._concurrency = max(settings.worker_concurrency, 2 * settings.worker_batch_size)
        self._heartbeat_timeout = timedelta(seconds=settings.job_heartbeat_timeout_seconds)
        self._manager: QueueManager | None = None
        self._stopping = asyncio.Event()

    async def run(self, *, drain: bool = False) -> None:
        """Process jobs until ``stop()``; with ``drain`` return once nothing is runnable."""
        connection = await asyncpg.connect(asyncpg_dsn(self._runtime.url))
        try:
            manager = QueueManager(Queries(AsyncpgDriver(connection)))
            for spec in registered_tasks().values():
                manager.entrypoint(spec.name)(_adapt(self._runtime, spec))
            self._manager = manager
            if self._stopping.is_set():
                return
            log.info("worker.started", tasks=sorted(registered_tasks()))
            await manager.run(
                batch_size=self._batch_size,
                max_concurrent_tasks=self._concurrency,
                heartbeat_timeout=self._heartbeat_timeout,
                dequeue_timeout=timedelta(seconds=5),
                mode=QueueExecutionMode.drain if drain else QueueExecutionMode.continuous,
            )
        finally:
            await connection.close()
            log.info("worker.stopped")

    def stop(self) -> None:
        self._stopping.set()
        if self._manager is not None:
            self._manager.shutdown.set()


def _adapt(runtime: Runtime, spec: TaskSpec) -> Callable[[Job], Awaitable[None]]:
    async def run_job(job: Job) -> None:
        payload = orjson.loads(job.payload) if job.payload else {}
        await spec.handler(runtime, payload)

    run_job.__name__ = spec.name.replace(".", "_")
    return run_job
