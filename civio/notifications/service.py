"""Notification records and the delivery loop every channel shares.

Delivery is at-least-once. Each attempt is first recorded (attempts+1, ``attempt_started_at``)
and committed, then the provider is called outside any transaction, then the outcome is
recorded: SENT; THROTTLED (temporary failure: retried with exponential backoff and jitter
until the message's time-to-live); EXPIRED (past the time-to-live, nothing sent); FAILED
(permanent). A worker killed between the provider's acceptance and the record retries with
the same deduplication key (``dedup_key``): providers that honour it (SMTP relays keyed on
Message-ID, push gateways' collapse ids) drop the duplicate; others may deliver twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.callbacks.service import emit
from civio.core.backoff import exponential_backoff
from civio.core.db import table_of, transaction
from civio.core.ids import new_ulid
from civio.core.queue import enqueue, enqueue_many
from civio.core.runtime import Runtime
from civio.notifications.decide import Recipient, channels_for, secure_channels
from civio.notifications.models import Installation, Notification, NotificationChannel
from civio.profiles.models import Profile
from civio.services.models import Service

log = structlog.get_logger(__name__)

EMAIL_TASK = "notifications.send_email"
PUSH_TASK = "notifications.send_push"
TASK_OF_CHANNEL = {"EMAIL": EMAIL_TASK, "WEBHOOK": PUSH_TASK}
FINAL = frozenset({"SENT", "EXPIRED", "FAILED"})


class TemporaryFailure(Exception):
    """The provider may accept later (connection refused, 5xx, 429): THROTTLED, retried."""


class PermanentFailure(Exception):
    """Retrying cannot help (bad address, 4xx from the gateway): FAILED."""


@dataclass(frozen=True)
class NotificationRequest:
    """A just-processed message and what the channel decision reads about it."""

    message_id: str
    fiscal_code: str
    sender_service_id: str
    expires_at: datetime
    message_requires_secure_channels: bool | None
    service: Service
    profile: Profile
    blocked: frozenset[str]


NOTIFICATIONS = table_of(Notification)
NOTIFICATION_CHANNELS = table_of(NotificationChannel)


async def plan_notifications(
    session: AsyncSession, requests: list[NotificationRequest], *, sandbox_fiscal_code: str
) -> dict[str, list[str]]:
    """Decide the channels of just-processed messages and queue their delivery, in the
    processing transaction: one query and a few bulk inserts for the whole batch.

    Returns the channels of each message; a message with none gets no record, as IO.
    """
    if not requests:
        return {}
    with_installation = set(
        await session.scalars(
            select(Installation.fiscal_code)
            .where(Installation.fiscal_code.in_({r.fiscal_code for r in requests}))
            .distinct()
        )
    )
    planned: dict[str, list[str]] = {}
    notifications: list[dict[str, Any]] = []
    channel_rows: list[dict[str, Any]] = []
    jobs: dict[str, list[dict[str, Any]]] = {}
    for request in requests:
        profile = request.profile
        recipient = Recipient(
            has_email=profile.email_ciphertext is not None,
            is_email_enabled=profile.is_email_enabled,
            is_email_validated=profile.is_email_validated,
            is_webhook_enabled=profile.is_webhook_enabled,
            blocked=request.blocked,
            has_installation=request.fiscal_code in with_installation,
            is_sandbox=request.fiscal_code == sandbox_fiscal_code,
        )
        secure = secure_channels(
            request.message_requires_secure_channels, request.service.require_secure_channels
        )
        channels = channels_for(recipient, secure=secure)
        planned[request.message_id] = channels
        if not channels:
            continue
        notification_id = new_ulid()
        notifications.append(
            {
                "id": notification_id,
                "message_id": request.message_id,
                "fiscal_code": request.fiscal_code,
                "sender_service_id": request.sender_service_id,
                "expires_at": request.expires_at,
            }
        )
        for channel in channels:
            channel_rows.append(
                {"notification_id": notification_id, "channel": channel, "attempts": 0}
            )
            jobs.setdefault(TASK_OF_CHANNEL[channel], []).append(
                {"notification_id": notification_id}
            )
    if notifications:
        await session.execute(insert(NOTIFICATIONS), notifications)
        await session.execute(insert(NOTIFICATION_CHANNELS), channel_rows)
        for task_name, payloads in jobs.items():
            await enqueue_many(session, task_name, payloads)
    return planned


@dataclass(frozen=True)
class Delivery:
    """What a channel's sender needs; it loads anything else itself."""

    notification_id: str
    message_id: str
    fiscal_code: str
    sender_service_id: str
    attempt: int
    # The same for every attempt of this channel, so a provider can drop duplicates.
    dedup_key: str


Sender = Callable[[Runtime, Delivery], Awaitable[None]]


def retry_delay(runtime: Runtime, attempt: int) -> float:
    settings = runtime.settings
    return exponential_backoff(
        settings.notification_retry_base_seconds, attempt, settings.notification_retry_max_seconds
    )


async def _set_status(
    session: AsyncSession,
    row: NotificationChannel,
    notification: Notification,
    status: str,
    error: str | None = None,
) -> None:
    row.status = status
    row.last_error = error
    if status == "SENT":
        row.sent_at = datetime.now(UTC)
    await emit(
        session,
        service_id=notification.sender_service_id,
        message_id=notification.message_id,
        event="notification.status",
        data={"channel": row.channel.lower(), "status": status},
    )


async def run_delivery(
    runtime: Runtime, notification_id: str, channel: str, send: Sender
) -> str | None:
    """One attempt of one channel; returns the status recorded (None if nothing to do)."""
    async with transaction(runtime.sessions) as session:
        row = await session.get(
            NotificationChannel, (notification_id, channel), with_for_update=True
        )
        notification = await session.get(Notification, notification_id)
        if row is None or notification is None or row.status in FINAL:
            return None
        if datetime.now(UTC) > notification.expires_at:
            await _set_status(session, row, notification, "EXPIRED")
            return "EXPIRED"
        row.attempts += 1
        row.attempt_started_at = datetime.now(UTC)
        delivery = Delivery(
            notification_id=notification.id,
            message_id=notification.message_id,
            fiscal_code=notification.fiscal_code,
            sender_service_id=notification.sender_service_id,
            attempt=row.attempts,
            dedup_key=f"{notification.id}-{channel.lower()}",
        )
    try:
        await send(runtime, delivery)
        outcome, error = "SENT", None
    except PermanentFailure as exc:
        outcome, error = "FAILED", str(exc)[:500]
    except Exception as exc:  # anything else is worth another try
        outcome, error = "THROTTLED", f"{type(exc).__name__}: {exc}"[:500]
        log.warning(
            "notifications.delivery.error",
            notification_id=notification_id,
            channel=channel,
            error=type(exc).__name__,
        )
    async with transaction(runtime.sessions) as session:
        row = await session.get(
            NotificationChannel, (notification_id, channel), with_for_update=True
        )
        notification = await session.get(Notification, notification_id)
        assert row is not None
        assert notification is not None
        if row.status in FINAL:
            return None
        await _set_status(session, row, notification, outcome, error)
        if outcome == "THROTTLED":
            delay = retry_delay(runtime, row.attempts)
            await enqueue(
                session,
                TASK_OF_CHANNEL[channel],
                {"notification_id": notification_id},
                delay=timedelta(seconds=delay),
            )
    log.info(
        "notifications.delivery",
        notification_id=notification_id,
        channel=channel,
        status=outcome,
        attempt=delivery.attempt,
    )
    return outcome


async def channel_statuses(session: AsyncSession, message_id: str) -> dict[str, str]:
    """``{"email": …, "webhook": …}`` for getMessage; channels without an outcome are left out."""
    rows = await session.execute(
        select(NotificationChannel.channel, NotificationChannel.status)
        .join(Notification, Notification.id == NotificationChannel.notification_id)
        .where(Notification.message_id == message_id)
    )
    return {channel.lower(): status for channel, status in rows if status is not None}
