"""The push job: what the citizen's devices are told about a new message, and its sending.

Texts follow IO's Notify function: verbose (title = the sender's organization, body = the
message subject) only when the citizen chose ``FULL``, has an active session, and the
service does not require secure channels; anonymous otherwise, so UNSET and ANONYMOUS
both mean anonymous. The message's own ``require_secure_channels`` governs email only, as
in IO. Anonymous texts are IO's Italian ones, or English/German after the citizen's first
matching preferred language.

The channel is SENT as soon as one device accepted the push: the citizen has been alerted,
and retrying the other devices would alert the first one again. With none accepted, any
retryable answer makes it THROTTLED (retried by the delivery loop), else FAILED. A Web Push
subscription the push service reports gone (404/410) is deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.auth.models import CitizenSession
from civio.core.crypto import CryptoError
from civio.core.db import transaction
from civio.core.keys import decrypt_for
from civio.core.languages import citizen_language
from civio.core.queue import task
from civio.core.runtime import Runtime
from civio.messages.models import Message
from civio.messages.service import content_aad
from civio.notifications.models import Notification
from civio.notifications.push.installations import forget_targets, load_targets
from civio.notifications.push.providers import (
    Outcome,
    PushNotice,
    PushProvider,
    Result,
    dispatch,
    providers_for,
)
from civio.notifications.service import (
    PUSH_TASK,
    Delivery,
    PermanentFailure,
    TemporaryFailure,
    run_delivery,
)
from civio.profiles.models import Profile
from civio.services.models import Service

log = structlog.get_logger(__name__)

# IO's MESSAGE texts (anonymous), and their English and German counterparts.
ANONYMOUS_TEXTS = {
    "it": ("Hai un nuovo messaggio", "Entra nell'app per leggerlo"),
    "en": ("You have a new message", "Open the app to read it"),
    "de": ("Sie haben eine neue Nachricht", "Öffnen Sie die App, um sie zu lesen"),
}


def push_texts(
    *,
    content_type: str | None,
    active_session: bool,
    secure_service: bool,
    organization_name: str | None,
    subject: str | None,
    preferred_languages: Sequence[str] | None,
) -> tuple[str, str]:
    """(title, body) of the push for a new message."""
    verbose = content_type == "FULL" and active_session and not secure_service
    if verbose and organization_name and subject:
        return organization_name, subject
    return ANONYMOUS_TEXTS[citizen_language(preferred_languages)]


async def _subject(session: AsyncSession, runtime: Runtime, message: Message) -> str | None:
    if message.content_ciphertext is None:
        return None
    try:
        plaintext = await decrypt_for(
            session,
            runtime.keyring,
            message.fiscal_code,
            message.content_ciphertext,
            content_aad(message.id),
        )
    except CryptoError:  # the citizen's key was shredded: nothing to tell
        return None
    content: dict[str, Any] = orjson.loads(plaintext)
    subject = content.get("subject")
    return subject if isinstance(subject, str) else None


async def build_notice(session: AsyncSession, runtime: Runtime, delivery: Delivery) -> PushNotice:
    notification = await session.get_one(Notification, delivery.notification_id)
    message = await session.get(Message, (delivery.fiscal_code, delivery.message_id))
    service = await session.get(Service, delivery.sender_service_id)
    profile = await session.get(Profile, delivery.fiscal_code)
    active_session = bool(
        await session.scalar(
            select(
                exists().where(
                    CitizenSession.fiscal_code == delivery.fiscal_code,
                    CitizenSession.expires_at > datetime.now(UTC),
                )
            )
        )
    )
    content_type = profile.push_notifications_content_type if profile else None
    wants_subject = content_type == "FULL" and service is not None and message is not None
    title, body = push_texts(
        content_type=content_type,
        active_session=active_session,
        secure_service=service.require_secure_channels if service else True,
        organization_name=service.organization_name if service else None,
        subject=await _subject(session, runtime, message) if wants_subject and message else None,
        preferred_languages=profile.preferred_languages if profile else None,
    )
    return PushNotice(
        title=title,
        body=body,
        message_id=delivery.message_id,
        dedup_key=delivery.dedup_key,
        expires_at=notification.expires_at,
    )


def _summary(results: Sequence[Result]) -> str:
    details = sorted({r.detail for r in results if r.detail})
    return "; ".join(details)[:500] or "no device accepted the push"


async def send_push(
    runtime: Runtime, delivery: Delivery, providers: Sequence[PushProvider] | None = None
) -> None:
    """One attempt to every installation of the recipient (the delivery loop's ``Sender``)."""
    async with runtime.sessions() as session:
        targets = await load_targets(session, runtime.keyring, delivery.fiscal_code)
        if not targets:
            raise PermanentFailure("no installation (the citizen logged out or unregistered)")
        notice = await build_notice(session, runtime, delivery)
    results = await dispatch(providers or providers_for(runtime.settings), targets, notice)
    gone = [t for t, r in zip(targets, results, strict=True) if r.outcome is Outcome.GONE]
    if gone:
        async with transaction(runtime.sessions) as session:
            await forget_targets(session, gone)
    counts = Counter(r.outcome.value for r in results)
    log.info(
        "notifications.push",
        notification_id=delivery.notification_id,
        recipient=runtime.keyring.log_ref(delivery.fiscal_code),
        attempt=delivery.attempt,
        **{f"{outcome}_count": n for outcome, n in sorted(counts.items())},
    )
    if counts[Outcome.SENT]:
        return
    if counts[Outcome.RETRY]:
        raise TemporaryFailure(_summary([r for r in results if r.outcome is Outcome.RETRY]))
    raise PermanentFailure(_summary(results))


@task(PUSH_TASK)
async def send_push_job(runtime: Runtime, payload: dict[str, Any]) -> None:
    await run_delivery(runtime, str(payload["notification_id"]), "WEBHOOK", send_push)
