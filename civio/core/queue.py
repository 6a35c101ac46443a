"""The job queue: pgqueuer on the same PostgreSQL, jobs enqueued in the caller's transaction.

``enqueue`` runs on the session's own asyncpg connection, so the job row commits or rolls
back together with the data it refers to. Jobs carry ids only; handlers re-read the rows
and must be idempotent (delivery is at-least-once: a worker killed mid-job leaves the job
``picked`` with a stale heartbeat, and another worker picks it up again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import structlog
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from pgqueuer.domain.errors import RetryRequested, retry_request
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.backoff import exponential_backoff
from civio.core.config import Settings
from civio.core.db import asyncpg_dsn
from civio.core.db_unavailable import is_database_unavailable
from civio.core.logging import safe_traceback
from civio.core.runtime import Runtime

log = structlog.get_logger(__name__)

# The longest wait between a worker's attempts to reach the database again (its queue
# connection, or a job that failed because the database was away).
OUTAGE_RETRY_MAX_SECONDS = 10.0

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


PeriodicHandler = Callable[["Runtime"], Awaitable[object]]


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    handler: PeriodicHandler
    every: Callable[[Settings], float]


_periodic: dict[str, PeriodicSpec] = {}


def periodic(
    name: str, every: Callable[[Settings], float]
) -> Callable[[PeriodicHandler], PeriodicHandler]:
    """Register a housekeeping function that every continuous worker runs at start and then
    every ``every(settings)`` seconds. It must be cheap and safe to run concurrently on many
    workers (typically: find stranded work and enqueue it with a dedupe key)."""

    def register(handler: PeriodicHandler) -> PeriodicHandler:
        if name in _periodic and _periodic[name].handler is not handler:
            raise RuntimeError(f"periodic {name!r} registered twice")
        _periodic[name] = PeriodicSpec(name, handler, every)
        return handler

    return register


def registered_periodic() -> dict[str, PeriodicSpec]:
    return dict(_periodic)


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
    dedupe_key: str | None = None,
) -> bool:
    """Write a job in the session's current transaction.

    With ``dedupe_key`` the job is skipped (returns False) while another job with that key is
    queued or running: pgqueuer's unique index covers both states.
    """
    queries = Queries(AsyncpgDriver(await raw_connection(session)))
    if dedupe_key is None:
        await queries.enqueue(name, orjson.dumps(payload), 0, delay)
        return True
    ids = await queries.enqueue(
        name, orjson.dumps(payload), 0, delay, dedupe_key, on_conflict="skip"
    )
    return ids[0] is not None


async def release_dedupe_key(session: AsyncSession, dedupe_key: str) -> None:
    """Let a new job take ``dedupe_key`` while the running job that holds it finishes.

    pgqueuer keeps the key of a *picked* job until the handler returns and the completion is
    flushed, so a job that has decided it is done would otherwise swallow the enqueues made
    in that window. Called by the running job, in its final transaction.
    """
    table = QueryBuilderEnvironment().settings.queue_table
    await session.execute(
        text(
            f"UPDATE {table} SET dedupe_key = NULL "  # noqa: S608 - pgqueuer's own table name
            "WHERE dedupe_key = :key AND status = 'picked'"
        ),
        {"key": dedupe_key},
    )


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
        self._outages = 0  # consecutive failed starts, for the reconnect backoff

    async def run(self, *, drain: bool = False) -> None:
        """Process jobs until ``stop()``; with ``drain`` return once nothing is runnable.

        A continuous worker outlives a database outage: when its queue connection is lost
        it waits (exponential backoff) and starts over on a new one. Jobs it had picked
        keep their rows (``picked``, heartbeat going stale) and are picked again, by this
        worker or another; handlers are idempotent, so nothing is lost or done twice.
        """
        while True:
            try:
                await self._run_once(drain=drain)
                return
            except Exception as exc:
                lost = is_database_unavailable(exc) or _queue_connection_broken(exc)
                if drain or self._stopping.is_set() or not lost:
                    raise
                self._outages += 1
                delay = exponential_backoff(0.5, self._outages, OUTAGE_RETRY_MAX_SECONDS)
                log.warning(
                    "worker.database_unavailable",
                    error=type(exc).__name__,
                    retry_in_seconds=round(delay, 2),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                if self._stopping.is_set():
                    return

    async def _run_once(self, *, drain: bool) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(self._runtime.url))
        try:
            manager = QueueManager(Queries(AsyncpgDriver(connection)))
            for spec in registered_tasks().values():
                manager.entrypoint(spec.name)(_adapt(self._runtime, spec))
            self._manager = manager
            if self._stopping.is_set():
                return
            log.info("worker.started", tasks=sorted(registered_tasks()))
            self._outages = 0
            # Housekeeping runs only in continuous workers: a drain must be able to end.
            # pgqueuer's own drain mode also waits for jobs deferred into the future (retry
            # backoffs); ours stops as soon as nothing is runnable now.
            side = (
                asyncio.create_task(self._stop_when_idle(manager))
                if drain
                else asyncio.create_task(_run_periodic(self._runtime))
            )
            try:
                await manager.run(
                    batch_size=self._batch_size,
                    max_concurrent_tasks=self._concurrency,
                    heartbeat_timeout=self._heartbeat_timeout,
                    dequeue_timeout=timedelta(seconds=0.2 if drain else 5),
                    mode=QueueExecutionMode.continuous,
                )
            finally:
                side.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await side
        finally:
            # A connection the server cut cannot close cleanly; it is gone either way.
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)
            log.info("worker.stopped")

    async def _stop_when_idle(self, manager: QueueManager) -> None:
        table = QueryBuilderEnvironment().settings.queue_table
        query = text(
            f"SELECT count(*) FROM {table} "  # noqa: S608 - pgqueuer's own table name
            "WHERE entrypoint = ANY(:names) AND ((status = 'queued' AND execute_after <= now()) "
            "OR (status = 'picked' AND queue_manager_id = :manager))"
        )
        names = list(registered_tasks())
        idle_checks = 0
        while idle_checks < 2:
            await asyncio.sleep(0.05)
            async with self._runtime.engine.connect() as connection:
                pending = await connection.scalar(
                    query, {"names": names, "manager": manager.queue_manager_id}
                )
            idle_checks = idle_checks + 1 if not pending else 0
        manager.shutdown.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._manager is not None:
            self._manager.shutdown.set()


def _queue_connection_broken(exc: BaseException) -> bool:
    """The queue connection's own state is broken: asyncpg refuses to use it again (its
    listener and a query overlapped as the server cut the session). Not the database's
    outage as such, and no job's fault: a new connection is the cure."""
    return isinstance(
        exc, asyncpg.exceptions.InternalClientError | asyncpg.exceptions.InterfaceError
    )


PRUNE_BATCH = 10_000


def _prune_interval(settings: Settings) -> float:
    return settings.queue_log_prune_seconds


@periodic("queue.prune_log", every=_prune_interval)
async def prune_queue_log(runtime: Runtime) -> int:
    """Delete pgqueuer's log rows past the retention, a bounded batch per statement so the
    table is never locked for long; returns how many went. Without this the log grows by
    a few rows per job forever (millions a day at national volume)."""
    hours = runtime.settings.queue_log_retention_hours
    if hours <= 0:
        return 0
    log_table = QueryBuilderEnvironment().settings.queue_table_log
    prune = text(
        f"DELETE FROM {log_table} WHERE ctid = ANY(ARRAY("  # noqa: S608 - pgqueuer's own table
        f"SELECT ctid FROM {log_table} WHERE created < now() - make_interval(secs => :seconds) "
        "LIMIT :batch))"
    )
    removed = 0
    while True:
        async with runtime.engine.begin() as connection:
            result = await connection.execute(
                prune, {"seconds": hours * 3600, "batch": PRUNE_BATCH}
            )
        removed += result.rowcount
        if result.rowcount < PRUNE_BATCH:
            return removed


async def _run_periodic(runtime: Runtime) -> None:
    async def loop(spec: PeriodicSpec) -> None:
        while True:
            try:
                await spec.handler(runtime)
            except Exception as exc:  # housekeeping must never stop the worker
                log.warning(
                    "worker.periodic.failed",
                    periodic=spec.name,
                    error=type(exc).__name__,
                    traceback=safe_traceback(exc),
                )
            await asyncio.sleep(max(spec.every(runtime.settings), 0.1))

    specs = registered_periodic().values()
    if specs:
        await asyncio.gather(*(loop(spec) for spec in specs))


class JobFailed(Exception):
    """What pgqueuer sees of a failed job: the scrubbed traceback only.

    pgqueuer logs a failing job's exception and stores its traceback in its log table;
    the original exception's text can quote SQL parameters or a fiscal code, so it never
    reaches either (``raise … from None`` drops the chain too).
    """


def _adapt(runtime: Runtime, spec: TaskSpec) -> Callable[[Job], Awaitable[None]]:
    async def run_job(job: Job) -> None:
        payload = orjson.loads(job.payload) if job.payload else {}
        try:
            await spec.handler(runtime, payload)
        except Exception as exc:
            if retry_request(exc) is not None:  # pgqueuer's own control flow, no error
                raise
            if is_database_unavailable(exc):
                # Not the job's fault: keep it for later instead of letting pgqueuer drop
                # it as failed (a handler cannot record its own retry while the database
                # is away).
                delay = exponential_backoff(1.0, job.attempts + 1, OUTAGE_RETRY_MAX_SECONDS)
                log.warning(
                    "worker.job.database_unavailable",
                    task=spec.name,
                    error=type(exc).__name__,
                    retry_in_seconds=round(delay, 2),
                )
                raise RetryRequested(
                    delay=timedelta(seconds=delay), reason="database unavailable"
                ) from exc
            traceback = safe_traceback(exc)
            log.error(
                "worker.job.failed",
                task=spec.name,
                job_id=int(job.id),
                error=type(exc).__name__,
                traceback=traceback,
            )
            raise JobFailed(f"{spec.name} failed:\n{traceback}") from None

    run_job.__name__ = spec.name.replace(".", "_")
    return run_job
