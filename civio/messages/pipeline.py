"""ProcessMessage: IO's rules that turn an ACCEPTED message into PROCESSED or REJECTED.

A job covers the batch of messages one accept transaction wrote (group commit), and the
batch is decided with a fixed number of statements: under load the per-message cost is the
rules and the crypto, not round trips. A batch that fails falls back to one message at a
time, and each message keeps its own retry count.

The job is at-least-once; the message rows are locked and only an ACCEPTED message moves,
so a job run twice (a worker killed after commit, a duplicate delivery) changes nothing
the second time. Transient errors are retried with exponential backoff and jitter; when
the attempts run out the message becomes FAILED.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    Boolean,
    LargeBinary,
    bindparam,
    case,
    func,
    insert,
    null,
    select,
    tuple_,
    update,
)

from civio.callbacks.service import emit
from civio.core.backoff import exponential_backoff
from civio.core.crypto import open_sealed, seal
from civio.core.db import table_of, transaction
from civio.core.keys import data_keys_for
from civio.core.languages import citizen_language
from civio.core.logging import safe_traceback
from civio.core.queue import enqueue, task
from civio.core.runtime import Runtime
from civio.messages.models import Message, MessageStatusChange
from civio.messages.search import search_key, tokens_for
from civio.messages.service import PROCESS_TASK, content_aad, summary_aad
from civio.messages.summary import summary_of
from civio.notifications.service import NotificationRequest, plan_notifications
from civio.ops.metrics import MESSAGES_PROCESSED
from civio.profiles.service import reachabilities
from civio.services.models import Service

log = structlog.get_logger(__name__)

MESSAGES = table_of(Message)
STATUS_CHANGES = table_of(MessageStatusChange)
MessageRef = tuple[str, str]  # (fiscal_code, message_id): the message's primary key

# One statement per batch for every outcome: a rejected message loses its content.
RECORD_OUTCOME = (
    update(MESSAGES)
    .where(MESSAGES.c.fiscal_code == bindparam("b_fiscal_code"))
    .where(MESSAGES.c.id == bindparam("b_id"))
    .values(
        status=bindparam("status"),
        rejection_reason=bindparam("rejection_reason"),
        is_pending=False,
        status_at=bindparam("status_at"),
        content_ciphertext=case(
            (bindparam("drop_content", type_=Boolean), null()),
            # A message by template gets the variant in the citizen's language.
            else_=func.coalesce(
                bindparam("content_ciphertext", type_=LargeBinary), MESSAGES.c.content_ciphertext
            ),
        ),
        summary_ciphertext=bindparam("summary_ciphertext"),
        search_tokens=bindparam("search_tokens"),
    )
)


def job_refs(payload: dict[str, Any]) -> list[MessageRef]:
    """The messages a job covers: a whole accept batch, or one message being retried."""
    if "messages" in payload:
        return [(str(fc), str(mid)) for fc, mid in payload["messages"]]
    return [(str(payload["fiscal_code"]), str(payload["id"]))]


@task(PROCESS_TASK)
async def process_message_job(runtime: Runtime, payload: dict[str, Any]) -> None:
    refs = job_refs(payload)
    try:
        await process_messages(runtime, refs)
        return
    except Exception as exc:  # transient by definition: the rules themselves cannot fail
        if len(refs) == 1:
            await _retry_or_fail(runtime, refs[0][1], refs[0][0], exc)
            return
    # The batch failed as a whole: one message at a time, so one cannot hold back others.
    for fiscal_code, message_id in refs:
        try:
            await process_messages(runtime, [(fiscal_code, message_id)])
        except Exception as exc:
            await _retry_or_fail(runtime, message_id, fiscal_code, exc)


async def process_message(runtime: Runtime, message_id: str, fiscal_code: str) -> str | None:
    """Apply the rules to one message; returns the new status, or None if nothing moved."""
    return (await process_messages(runtime, [(fiscal_code, message_id)])).get(message_id)


async def process_messages(runtime: Runtime, refs: list[MessageRef]) -> dict[str, str]:
    """Apply IO's rules to a batch in one transaction, with a fixed number of statements
    whatever the batch size; returns the new status of each message that moved."""
    settings = runtime.settings
    async with transaction(runtime.sessions) as session:
        # Locked in primary-key order, so overlapping batches wait instead of deadlocking;
        # only ACCEPTED messages move, so a job run twice changes nothing the second time.
        messages = (
            await session.execute(
                select(
                    MESSAGES.c.fiscal_code,
                    MESSAGES.c.id,
                    MESSAGES.c.sender_service_id,
                    MESSAGES.c.created_at,
                    MESSAGES.c.time_to_live,
                    MESSAGES.c.content_ciphertext,
                )
                .where(tuple_(MESSAGES.c.fiscal_code, MESSAGES.c.id).in_(refs))
                .where(MESSAGES.c.status == "ACCEPTED")
                .order_by(MESSAGES.c.fiscal_code, MESSAGES.c.id)
                .with_for_update()
            )
        ).all()
        if not messages:
            return {}
        sender_ids = {m.sender_service_id for m in messages}
        services = {
            service.service_id: service
            for service in await session.scalars(
                select(Service).where(Service.service_id.in_(sender_ids))
            )
        }
        if len(services) < len(sender_ids):
            raise LookupError("sender service no longer exists")
        reach_of = await reachabilities(
            session,
            [
                (
                    m.fiscal_code,
                    m.sender_service_id,
                    services[m.sender_service_id].category == "SPECIAL",
                )
                for m in messages
            ],
            grace_seconds=settings.pending_activation_grace_seconds,
        )
        keys = await data_keys_for(
            session,
            runtime.keyring,
            (
                m.fiscal_code
                for m in messages
                if reach_of[m.fiscal_code, m.sender_service_id][0] is not None
            ),
        )
        now = datetime.now(UTC)
        outcomes: dict[str, str] = {}
        updates: list[dict[str, Any]] = []
        notifications: list[NotificationRequest] = []
        for m in messages:
            service = services[m.sender_service_id]
            profile, reach = reach_of[m.fiscal_code, m.sender_service_id]
            row: dict[str, Any] = {
                "b_fiscal_code": m.fiscal_code,
                "b_id": m.id,
                "status_at": now,
                "rejection_reason": None,
                "drop_content": False,
                "content_ciphertext": None,
                "summary_ciphertext": None,
                "search_tokens": None,
            }
            if profile is None or not reach.inbox_enabled or not reach.sender_allowed:
                # IO never stores a rejected message's content.
                row["status"] = "REJECTED"
                row["drop_content"] = True
                row["rejection_reason"] = (
                    "USER_NOT_FOUND" if profile is None else "SERVICE_NOT_ALLOWED"
                )
            else:
                row["status"] = "PROCESSED"
                content = _prepare_for_inbox(
                    keys[m.fiscal_code], m, service, row, profile.preferred_languages
                )
                notifications.append(
                    NotificationRequest(
                        message_id=m.id,
                        fiscal_code=m.fiscal_code,
                        sender_service_id=m.sender_service_id,
                        expires_at=m.created_at + timedelta(seconds=m.time_to_live),
                        message_requires_secure_channels=content.get("require_secure_channels"),
                        service=service,
                        profile=profile,
                        blocked=reach.blocked,
                    )
                )
            outcomes[m.id] = row["status"]
            updates.append(row)
        await session.execute(RECORD_OUTCOME, updates)
        await session.execute(
            insert(STATUS_CHANGES),
            [{"message_id": m.id, "status": outcomes[m.id]} for m in messages],
        )
        await plan_notifications(
            session, notifications, sandbox_fiscal_code=settings.sandbox_fiscal_code
        )
        for m in messages:
            await emit(
                session,
                service_id=m.sender_service_id,
                message_id=m.id,
                event="message.status",
                data={"status": outcomes[m.id]},
            )
    for m, row in zip(messages, updates, strict=True):
        MESSAGES_PROCESSED.labels(row["status"]).inc()
        log.info(
            "messages.process.done",
            message_id=m.id,
            recipient=runtime.keyring.log_ref(m.fiscal_code),
            status=row["status"],
            reason=row["rejection_reason"],
        )
    return outcomes


def _prepare_for_inbox(
    data_key: bytes,
    message: Any,
    service: Service,
    row: dict[str, Any],
    preferred_languages: list[str],
) -> dict[str, Any]:
    """Summary and search tokens, so listing and searching never decrypt whole contents;
    for a message by template, the variant in the citizen's language becomes its content
    (for the inbox, the alerts and the sender's read alike)."""
    content: dict[str, Any] = orjson.loads(
        open_sealed(data_key, message.content_ciphertext, content_aad(message.id).encode())
    )
    if "variants" in content:
        variants: dict[str, dict[str, Any]] = content["variants"]
        content = variants[citizen_language(preferred_languages, variants)]
        row["content_ciphertext"] = seal(
            data_key, orjson.dumps(content), content_aad(message.id).encode()
        )
    row["summary_ciphertext"] = seal(
        data_key, orjson.dumps(summary_of(content)), summary_aad(message.id).encode()
    )
    row["search_tokens"] = tokens_for(
        search_key(data_key),
        [content["subject"], content["markdown"], service.service_name, service.organization_name],
    )
    return content


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
                traceback=safe_traceback(exc),
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
            traceback=safe_traceback(exc),
        )
