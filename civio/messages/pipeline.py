"""ProcessMessage: IO's rules that turn an ACCEPTED message into PROCESSED or REJECTED.

The job is at-least-once; the message row is locked and only an ACCEPTED message moves,
so a job run twice (a worker killed after commit, a duplicate delivery) changes nothing
the second time. Transient errors are retried with exponential backoff and jitter; when
the attempts run out the message becomes FAILED.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from civio.callbacks.service import emit
from civio.core.backoff import exponential_backoff
from civio.core.crypto import log_ref, open_sealed, seal
from civio.core.db import transaction
from civio.core.keys import data_key_for
from civio.core.queue import enqueue, task
from civio.core.runtime import Runtime
from civio.messages.models import Message, MessageStatusChange
from civio.messages.search import search_key, tokens_for
from civio.messages.service import PROCESS_TASK, content_aad, summary_aad
from civio.messages.summary import summary_of
from civio.notifications.service import plan_notification
from civio.ops.metrics import MESSAGES_PROCESSED
from civio.profiles.service import reachability
from civio.services.models import Service

log = structlog.get_logger(__name__)


@task(PROCESS_TASK)
async def process_message_job(runtime: Runtime, payload: dict[str, Any]) -> None:
    message_id, fiscal_code = str(payload["id"]), str(payload["fiscal_code"])
    try:
        await process_message(runtime, message_id, fiscal_code)
    except Exception as exc:  # transient by definition: the rules themselves cannot fail
        await _retry_or_fail(runtime, message_id, fiscal_code, exc)


async def process_message(runtime: Runtime, message_id: str, fiscal_code: str) -> str | None:
    """Apply the rules in one transaction; returns the new status, or None if nothing moved."""
    settings = runtime.settings
    async with transaction(runtime.sessions) as session:
        message = await session.scalar(
            select(Message)
            .where(Message.fiscal_code == fiscal_code, Message.id == message_id)
            .with_for_update()
        )
        if message is None or message.status != "ACCEPTED":
            return None
        if settings.fault_stall_process_seconds:
            await asyncio.sleep(settings.fault_stall_process_seconds)
        service = await session.get(Service, message.sender_service_id)
        if service is None:
            raise LookupError("sender service no longer exists")
        profile, reach = await reachability(
            session,
            fiscal_code,
            service.service_id,
            special=service.category == "SPECIAL",
            grace_seconds=settings.pending_activation_grace_seconds,
        )
        if profile is None:
            status, reason = "REJECTED", "USER_NOT_FOUND"
        elif not reach.inbox_enabled or not reach.sender_allowed:
            status, reason = "REJECTED", "SERVICE_NOT_ALLOWED"
        else:
            status, reason = "PROCESSED", None
        message.status = status
        message.rejection_reason = reason
        message.is_pending = False
        message.status_at = datetime.now(UTC)
        if status == "REJECTED":
            message.content_ciphertext = None  # IO never stores a rejected message's content
        else:
            assert profile is not None
            content = await _prepare_for_inbox(runtime, session, message, service)
            await plan_notification(
                session,
                message,
                service,
                profile,
                reach.blocked,
                content,
                sandbox_fiscal_code=settings.sandbox_fiscal_code,
            )
        session.add(MessageStatusChange(message_id=message_id, status=status))
        await emit(
            session,
            service_id=message.sender_service_id,
            message_id=message_id,
            event="message.status",
            data={"status": status},
        )
    MESSAGES_PROCESSED.labels(status).inc()
    log.info(
        "messages.process.done",
        message_id=message_id,
        recipient=log_ref(fiscal_code),
        status=status,
        reason=reason,
    )
    return status


async def _prepare_for_inbox(
    runtime: Runtime, session: AsyncSession, message: Message, service: Service
) -> dict[str, Any]:
    """Summary and search tokens, so listing and searching never decrypt whole contents."""
    assert message.content_ciphertext is not None
    data_key = await data_key_for(session, runtime.keyring, message.fiscal_code)
    content = orjson.loads(
        open_sealed(data_key, message.content_ciphertext, content_aad(message.id).encode())
    )
    message.summary_ciphertext = seal(
        data_key, orjson.dumps(summary_of(content)), summary_aad(message.id).encode()
    )
    message.search_tokens = tokens_for(
        search_key(data_key),
        [content["subject"], content["markdown"], service.service_name, service.organization_name],
    )
    return content  # type: ignore[no-any-return]


def backoff_seconds(attempt: int) -> float:
    return exponential_backoff(2.0, attempt + 1, 300.0)


async def _retry_or_fail(
    runtime: Runtime, message_id: str, fiscal_code: str, exc: Exception
) -> None:
    async with transaction(runtime.sessions) as session:
        attempts = await session.scalar(
            update(Message)
            .where(
                Message.fiscal_code == fiscal_code,
                Message.id == message_id,
                Message.status == "ACCEPTED",
            )
            .values(processing_attempts=Message.processing_attempts + 1)
            .returning(Message.processing_attempts)
        )
        if attempts is None:
            return
        if attempts >= runtime.settings.process_max_attempts:
            sender_service_id = await session.scalar(
                update(Message)
                .where(Message.fiscal_code == fiscal_code, Message.id == message_id)
                .values(status="FAILED", status_at=datetime.now(UTC))
                .returning(Message.sender_service_id)
            )
            session.add(MessageStatusChange(message_id=message_id, status="FAILED"))
            await emit(
                session,
                service_id=str(sender_service_id),
                message_id=message_id,
                event="message.status",
                data={"status": "FAILED"},
            )
            MESSAGES_PROCESSED.labels("FAILED").inc()
            log.error(
                "messages.process.failed",
                message_id=message_id,
                attempts=attempts,
                error=type(exc).__name__,
            )
            return
        delay = backoff_seconds(attempts)
        await enqueue(
            session,
            PROCESS_TASK,
            {"id": message_id, "fiscal_code": fiscal_code},
            delay=timedelta(seconds=delay),
        )
        log.warning(
            "messages.process.retry",
            message_id=message_id,
            attempts=attempts,
            delay_seconds=round(delay, 2),
            error=type(exc).__name__,
        )
