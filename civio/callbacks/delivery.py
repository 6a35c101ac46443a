"""Delivering sender callbacks: per service, one event at a time, in id order.

One job (``callbacks.deliver``, dedupe key per service) runs a service's queue: it takes the
oldest PENDING event, counts the attempt and commits, POSTs it with no transaction open,
then records the outcome. 2xx → DELIVERED. A network error, 5xx or 429 is retried with
exponential backoff and jitter (``Retry-After`` honoured up to a cap) until
``callback_max_attempts``, then FAILED; any other status → FAILED at once. While the oldest
event waits for its retry, the job goes back to the queue with that delay (pgqueuer's
``RetryRequested`` keeps the same job row and dedupe key), so later events of the service
wait behind it and no other job can start for the service meanwhile.

Delivery is at-least-once: a worker killed after the receiver answered but before the
outcome was recorded sends the event again (same ``X-Civio-Event-Id``). Because attempts
are counted before the POST, a crash loop still stops after the maximum attempts.

The POST goes through the guarded client (``civio.core.outbound``): outside dev, a URL
whose name now resolves to an internal address is refused at connection time, and the
event is FAILED at once (the same URL would be refused again).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import orjson
import structlog
from pgqueuer.errors import RetryRequested
from sqlalchemy import func, select, text, update

from civio.callbacks.models import CallbackEvent
from civio.callbacks.service import (
    CALLBACK_TASK,
    LOCK_NAMESPACE,
    abandon_pending,
    dedupe_key,
)
from civio.callbacks.signing import headers_for
from civio.core.backoff import exponential_backoff
from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.outbound import guarded_client
from civio.core.queue import enqueue, periodic, release_dedupe_key, task
from civio.core.runtime import Runtime
from civio.core.ssrf import DestinationRefused, OutboundGuard
from civio.ops.metrics import CALLBACK_DELIVERIES
from civio.services.models import Service

log = structlog.get_logger(__name__)

# Events sent per job run before the job yields its worker slot (it is re-queued at once),
# and how many pending events one locked read fetches.
RUN_BUDGET = 100
BATCH = 20
# A shorter wait for the oldest event is slept through in the job; a longer one sends the
# job back to the queue with that delay, freeing the worker slot.
INLINE_WAIT_SECONDS = 1.0
MAX_ERROR_LENGTH = 300

OutcomeKind = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True)
class Pending:
    id: int
    attempts: int
    payload: dict[str, Any]
    # Seconds until due (0 when due now).
    wait: float


@dataclass(frozen=True)
class Attempt:
    event_id: int
    number: int
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True)
class Response:
    """What one POST produced: an HTTP status, or a transport error."""

    status: int | None
    error: str | None
    retryable: bool
    retry_after: float | None = None


@task(CALLBACK_TASK)
async def deliver_job(runtime: Runtime, payload: dict[str, Any]) -> None:
    service_id = str(payload["service_id"])
    try:
        wait = await deliver_pending(runtime, service_id)
    except Exception as exc:
        # Keep the job, and with it the service's dedupe key, rather than let pgqueuer drop
        # it: the events stay PENDING and are tried again.
        log.warning("callbacks.deliver.error", service_id=service_id, error=type(exc).__name__)
        delay = retry_delay(runtime.settings, 3, None)
        raise RetryRequested(delay=timedelta(seconds=delay), reason="delivery error") from exc
    if wait is not None:
        raise RetryRequested(delay=timedelta(seconds=wait), reason="callback backoff")


async def deliver_pending(
    runtime: Runtime, service_id: str, *, budget: int = RUN_BUDGET
) -> float | None:
    """Deliver the service's due events in order. Returns None when nothing is left (the
    dedupe key is then released), else the seconds until the job should run again."""
    settings = runtime.settings
    client = guarded_client(OutboundGuard.of(settings))
    sent = 0
    while sent < budget:
        batch = await _pending(runtime, service_id, min(BATCH, budget - sent))
        if batch is None:
            return None
        for event in batch:
            if event.wait > INLINE_WAIT_SECONDS:
                return event.wait
            if event.wait > 0:
                await asyncio.sleep(event.wait)  # cheaper than a trip through the queue
                break
            attempt = await _start(runtime, service_id, event)
            if attempt is None:
                break  # changed meanwhile (or the URL is gone): read again
            response = await post(client, settings, attempt)
            retrying = await _record(runtime, service_id, attempt, response)
            sent += 1
            if retrying or sent >= budget:
                break
    return 0.0


async def _pending(runtime: Runtime, service_id: str, limit: int) -> list[Pending] | None:
    """The oldest PENDING events, read under the exclusive lock so that no transaction still
    holds a smaller id. None when there is none: the dedupe key is then released in this same
    transaction (see ``civio.callbacks.service``)."""
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text(f"SELECT pg_advisory_xact_lock({LOCK_NAMESPACE}, hashtext(:service_id))"),
            {"service_id": service_id},
        )
        # Due times are compared on the database clock, which also wrote them.
        wait = func.greatest(
            func.extract("epoch", CallbackEvent.next_attempt_at - func.clock_timestamp()), 0
        )
        rows = (
            await session.execute(
                select(CallbackEvent.id, CallbackEvent.attempts, CallbackEvent.payload, wait)
                .where(CallbackEvent.service_id == service_id, CallbackEvent.status == "PENDING")
                .order_by(CallbackEvent.id)
                .limit(limit)
            )
        ).all()
        if not rows:
            await release_dedupe_key(session, dedupe_key(service_id))
            return None
        return [Pending(row[0], row[1], row[2], float(row[3])) for row in rows]


async def _start(runtime: Runtime, service_id: str, event: Pending) -> Attempt | None:
    """Count the attempt and commit before the POST, so a crash still uses one up."""
    async with transaction(runtime.sessions) as session:
        target = (
            await session.execute(
                select(Service.callback_url, Service.callback_secret_ciphertext).where(
                    Service.service_id == service_id
                )
            )
        ).one_or_none()
        if target is None or target[0] is None or target[1] is None:
            count = await abandon_pending(session, service_id, "no callback URL")
            log.warning("callbacks.abandoned", service_id=service_id, events=count)
            return None
        number = await session.scalar(
            update(CallbackEvent)
            .where(
                CallbackEvent.id == event.id,
                CallbackEvent.status == "PENDING",
                CallbackEvent.attempts == event.attempts,
            )
            .values(attempts=CallbackEvent.attempts + 1)
            .returning(CallbackEvent.attempts)
        )
        if number is None:
            return None
        secret = runtime.keyring.open_service_secret(service_id, target[1]).decode()
        return Attempt(event.id, number, target[0], secret, orjson.dumps(event.payload))


async def post(client: httpx.AsyncClient, settings: Settings, attempt: Attempt) -> Response:
    """One signed POST; the response body is never read."""
    timestamp = int(time.time())
    headers = headers_for(attempt.secret, attempt.event_id, timestamp, attempt.body)
    try:
        async with (
            asyncio.timeout(settings.callback_timeout_seconds),
            client.stream(
                "POST",
                attempt.url,
                content=attempt.body,
                headers=headers,
                timeout=settings.callback_timeout_seconds,
            ) as answer,
        ):
            status, retry_after = answer.status_code, answer.headers.get("retry-after")
    except (DestinationRefused, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return Response(None, _describe(exc), retryable=False)
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        return Response(None, _describe(exc), retryable=True)
    if 200 <= status < 300:
        return Response(status, None, retryable=False)
    if status >= 500 or status == 429:
        return Response(status, f"HTTP {status}", True, parse_retry_after(retry_after))
    return Response(status, f"HTTP {status} (not retried)", retryable=False)


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    text_ = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return text_[:MAX_ERROR_LENGTH]


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retry_delay(settings: Settings, attempt: int, retry_after: float | None) -> float:
    """Exponential with jitter; a receiver's Retry-After is waited for, up to its cap."""
    delay = exponential_backoff(
        settings.callback_retry_base_seconds, attempt, settings.callback_retry_max_seconds
    )
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.callback_retry_after_max_seconds))
    return delay


async def _record(runtime: Runtime, service_id: str, attempt: Attempt, response: Response) -> bool:
    """Store the outcome; True when the event stays PENDING for another attempt."""
    settings = runtime.settings
    values: dict[str, Any] = {
        "last_response_status": response.status,
        "last_error": response.error,
    }
    kind: OutcomeKind
    if response.status is not None and 200 <= response.status < 300:
        kind = "delivered"
        values.update(status="DELIVERED", delivered_at=func.now())
    elif response.retryable and attempt.number < settings.callback_max_attempts:
        kind = "retry"
        delay = retry_delay(settings, attempt.number, response.retry_after)
        values.update(next_attempt_at=func.clock_timestamp() + timedelta(seconds=delay))
    else:
        kind = "failed"
        values.update(status="FAILED")
    async with transaction(runtime.sessions) as session:
        # Guarded by the attempt number: a stale duplicate run cannot overwrite a newer one.
        await session.execute(
            update(CallbackEvent)
            .where(
                CallbackEvent.id == attempt.event_id,
                CallbackEvent.status == "PENDING",
                CallbackEvent.attempts == attempt.number,
            )
            .values(**values)
        )
    CALLBACK_DELIVERIES.labels(kind).inc()
    write = log.warning if kind == "failed" else log.info
    write(
        "callbacks.attempt",
        service_id=service_id,
        event_id=attempt.event_id,
        attempt=attempt.number,
        outcome=kind,
        http_status=response.status,
        error=None if response.error is None else response.error.split(":", 1)[0],
    )
    return kind == "retry"


async def requeue_stranded(runtime: Runtime) -> int:
    """Queue delivery for every service with PENDING events and no job (a safety net:
    normally ``emit`` queues it). Services whose job is queued or running are skipped by
    the dedupe key. Returns how many jobs were queued."""
    async with transaction(runtime.sessions) as session:
        service_ids = (
            await session.scalars(
                select(CallbackEvent.service_id).where(CallbackEvent.status == "PENDING").distinct()
            )
        ).all()
        queued = 0
        for service_id in service_ids:
            if await enqueue(
                session,
                CALLBACK_TASK,
                {"service_id": service_id},
                dedupe_key=dedupe_key(service_id),
            ):
                queued += 1
    if queued:
        log.info("callbacks.sweep.requeued", services=queued)
    return queued


def _sweep_interval(settings: Settings) -> float:
    return settings.callback_sweep_seconds


@periodic("callbacks.sweep", every=_sweep_interval)
async def sweep(runtime: Runtime) -> None:
    await requeue_stranded(runtime)
