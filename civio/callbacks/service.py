"""Recording sender events, and the rules for configuring where they go.

``emit`` runs inside the transaction that changes a status, so an event exists exactly when
its status change does. It writes a row only for services with a callback URL, and queues
the per-service delivery job (``civio.callbacks.delivery``) in the same transaction, with a
dedupe key so a burst of messages leaves one job per service, not one per event.

Ordering and the end of a delivery run: ``emit`` takes a shared advisory lock on the
service before it draws the event id and holds it until commit; the delivery job takes the
lock exclusively whenever it reads the pending events. So when it reads, every transaction
holding a smaller id has committed (events go out in id order, with no gap filled later),
and when it finds nothing left it releases its dedupe key under that same lock: a later
event is either seen by that read or committed after the release, and then its own enqueue
starts a new job.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from civio.callbacks.models import CallbackEvent
from civio.callbacks.schemas import CallbackEventList, CallbackEventOut, CallbackStatus
from civio.callbacks.signing import new_secret
from civio.core.crypto import KeyRing
from civio.core.problems import Problem
from civio.core.queue import enqueue
from civio.core.runtime import Runtime
from civio.core.ssrf import DestinationRefused, OutboundGuard
from civio.core.types import format_timestamp

CALLBACK_TASK = "callbacks.deliver"
# Advisory-lock class of the per-service delivery lock (ASCII "call"); the object id is
# hashtext(service_id). A hash collision only makes two services wait for each other briefly.
LOCK_NAMESPACE = 0x63616C6C
# Whether a service has a callback URL is cached this long per process, so the accept path
# of services without one costs no query; changes made in this process apply at once.
CACHE_SECONDS = 1.0
MAX_URL_LENGTH = 2048

_has_url: dict[str, tuple[float, bool]] = {}

_INSERT_EVENT = text(
    f"""
    INSERT INTO callback_events
        (id, service_id, message_id, payload, status, attempts, next_attempt_at, created_at)
    SELECT e.id, e.service_id, :message_id,
           :data || jsonb_build_object(
               'id', e.id,
               'type', CAST(:event AS text),
               'message_id', CAST(:message_id AS text),
               'service_id', e.service_id,
               'created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
           ),
           'PENDING', 0, now(), now()
    FROM (
        -- The shared lock is taken before the id is drawn (it is part of nextval's
        -- argument), so an id is only ever held by a transaction that holds the lock.
        -- OFFSET 0 keeps this evaluated once per row, not once per reference to e.id.
        SELECT s.service_id,
               nextval(CAST(
                   CAST(pg_advisory_xact_lock_shared({LOCK_NAMESPACE}, hashtext(s.service_id))
                        AS text)
                   || pg_get_serial_sequence('callback_events', 'id') AS regclass
               )) AS id
        FROM services AS s
        WHERE s.service_id = :service_id AND s.callback_url IS NOT NULL
        OFFSET 0
    ) AS e
    RETURNING id
    """  # noqa: S608 - the only interpolation is an integer constant
).bindparams(bindparam("data", type_=JSONB))


def dedupe_key(service_id: str) -> str:
    return f"{CALLBACK_TASK}:{service_id}"


def forget(service_id: str) -> None:
    """Drop the cached "has a callback URL" answer after this process changed it."""
    _has_url.pop(service_id, None)


def _remember(service_id: str, has_url: bool, now: float) -> None:
    if len(_has_url) > 100_000:
        _has_url.clear()
    _has_url[service_id] = (now, has_url)


def _scalars_only(data: dict[str, Any]) -> dict[str, Any]:
    # Events carry ids and statuses; refusing nested values keeps content (and anything
    # personal that could come with it) from slipping into a payload by accident.
    for key, value in data.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise TypeError(f"callback event field {key!r} must be a scalar")
    return data


async def emit(
    session: AsyncSession,
    *,
    service_id: str,
    message_id: str,
    event: str,
    data: dict[str, Any],
) -> None:
    """Owe the sender an event, in the caller's transaction.

    For a service without a callback URL nothing is written (and, once cached, nothing is
    queried). The payload is ``{id, type, message_id, service_id, created_at, **data}``;
    the fixed fields win over ``data``.
    """
    now = time.monotonic()
    cached = _has_url.get(service_id)
    if cached is not None and now - cached[0] < CACHE_SECONDS and not cached[1]:
        return
    # One statement both checks the URL and writes the event (no separate lookup).
    event_id = await session.scalar(
        _INSERT_EVENT,
        {
            "service_id": service_id,
            "message_id": message_id,
            "event": event,
            "data": _scalars_only(data),
        },
    )
    _remember(service_id, event_id is not None, now)
    if event_id is None:
        return
    await enqueue(
        session, CALLBACK_TASK, {"service_id": service_id}, dedupe_key=dedupe_key(service_id)
    )


def _invalid(detail: str) -> Problem:
    return Problem(400, "Invalid callback URL", detail)


@dataclass(frozen=True)
class CallbackPolicy:
    """What configuring a callback needs: the key ring (to seal the secret), whether plain
    http is refused, and which addresses may be called (both: production)."""

    keyring: KeyRing
    require_https: bool
    guard: OutboundGuard

    @classmethod
    def of(cls, runtime: Runtime) -> CallbackPolicy:
        settings = runtime.settings
        return cls(runtime.keyring, not settings.is_dev, OutboundGuard.of(settings))

    async def check(self, url: str) -> str:
        """The URL's form, then its host: outside dev only public addresses are called."""
        self.check_url(url)
        try:
            await self.guard.check_url(url)
        except DestinationRefused as exc:
            detail = f"The callback URL's host {exc.reason}"
            if exc.is_address:
                detail += (
                    ": outside dev civio calls only public addresses "
                    "(CIVIO_OUTBOUND_ALLOWED_NETWORKS allows others)"
                )
            raise _invalid(detail + ".") from exc
        return url

    def check_url(self, url: str) -> str:
        """The URL's form (no lookup): http(s), a host, no credentials or fragment."""
        invalid = _invalid
        if len(url) > MAX_URL_LENGTH:
            raise invalid(f"The callback URL is longer than {MAX_URL_LENGTH} characters.")
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise invalid("The callback URL contains spaces or control characters.")
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise invalid("The callback URL is malformed.") from exc
        if parts.scheme not in ("http", "https"):
            raise invalid("The callback URL must be an http or https URL.")
        if self.require_https and parts.scheme != "https":
            raise invalid("The callback URL must use https in production.")
        if not parts.hostname:
            raise invalid("The callback URL has no host.")
        if parts.username is not None or parts.password is not None:
            raise invalid("The callback URL must not carry credentials; verify the signature.")
        if parts.fragment:
            raise invalid("The callback URL must not have a fragment.")
        return url

    def new_secret(self, service_id: str) -> tuple[str, bytes]:
        """A fresh signing secret: (shown once, stored sealed)."""
        secret = new_secret()
        return secret, self.keyring.seal_service_secret(service_id, secret.encode())


async def abandon_pending(session: AsyncSession, service_id: str, reason: str) -> int:
    """Mark the service's undelivered events FAILED (its callback URL was removed)."""
    result = await session.execute(
        update(CallbackEvent)
        .where(CallbackEvent.service_id == service_id, CallbackEvent.status == "PENDING")
        .values(status="FAILED", last_error=reason)
        .returning(CallbackEvent.id)
    )
    return len(result.all())


def event_view(row: CallbackEvent) -> CallbackEventOut:
    status: CallbackStatus = row.status  # type: ignore[assignment]
    return CallbackEventOut(
        id=row.id,
        type=str(row.payload.get("type", "")),
        message_id=row.message_id,
        status=status,
        attempts=row.attempts,
        last_response_status=row.last_response_status,
        last_error=row.last_error,
        created_at=format_timestamp(row.created_at),
        next_attempt_at=format_timestamp(row.next_attempt_at) if status == "PENDING" else None,
        delivered_at=format_timestamp(row.delivered_at) if row.delivered_at else None,
        payload=dict(row.payload),
    )


async def recent_events(
    session: AsyncSession,
    service_id: str,
    *,
    status: CallbackStatus | None = None,
    limit: int = 50,
) -> CallbackEventList:
    """The service's most recent events first, optionally of one status."""
    query = select(CallbackEvent).where(CallbackEvent.service_id == service_id)
    if status is not None:
        query = query.where(CallbackEvent.status == status)
    rows = await session.scalars(query.order_by(CallbackEvent.id.desc()).limit(limit))
    return CallbackEventList(items=[event_view(row) for row in rows])
