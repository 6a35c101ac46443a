"""The email alert for a new message (IO's EmailNotification).

Subject = the message's subject; the body shows sender, subject and a preview built as IO
does: the markdown after the last ``---`` (once the CTA block is cut off: a ``---`` inside
it must not decide where the preview starts), markdown stripped, cut to 134 characters with
``...``, links replaced by ``[link rimosso]``, and a zero-width space after every dot (so
mail clients do not turn "comune.roma.it" into a link).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.keys import decrypt_for
from civio.core.languages import citizen_language
from civio.core.mail import MailDeliveryError, compose_mail, send_mail
from civio.core.queue import task
from civio.core.runtime import Runtime
from civio.messages.cta import body_of
from civio.messages.models import Message
from civio.messages.service import content_aad
from civio.notifications.service import (
    EMAIL_TASK,
    Delivery,
    PermanentFailure,
    TemporaryFailure,
    run_delivery,
)
from civio.profiles.models import Profile
from civio.profiles.service import read_email
from civio.services.models import Owner, Service

PREVIEW_LENGTH = 134
ZERO_WIDTH_SPACE = "\u200b"
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]]+", re.IGNORECASE)
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)]*)\)")
_MARKDOWN_MARKS = re.compile(r"(^\s{0,3}(?:#{1,6}|>|[-*+]|\d+[.)])\s+)|[*_`~]", re.MULTILINE)


def preview(markdown: str) -> str:
    body = body_of(markdown).rsplit("---", 1)[-1]
    body = _MARKDOWN_LINK.sub(r"\1 \2", body)
    body = _MARKDOWN_MARKS.sub("", body)
    body = " ".join(body.split())
    if len(body) > PREVIEW_LENGTH:
        body = body[:PREVIEW_LENGTH] + "..."
    body = _URL.sub("[link rimosso]", body)
    return body.replace(".", "." + ZERO_WIDTH_SPACE)


async def _recipient_address(
    session: AsyncSession, runtime: Runtime, profile: Profile | None, service: Service, fc: str
) -> str:
    if fc == runtime.settings.sandbox_fiscal_code:
        # IO: messages to the sandbox fiscal code are mailed to the service's developer.
        owner = await session.get(Owner, service.owner_id)
        if owner is None:
            raise PermanentFailure("the service has no owner address")
        return owner.email
    address = await read_email(session, runtime.keyring, profile) if profile else None
    if address is None:
        raise PermanentFailure("the citizen has no email address any more")
    return address


async def build_alert(runtime: Runtime, delivery: Delivery) -> Any:
    async with runtime.sessions() as session:
        message = await session.get(Message, (delivery.fiscal_code, delivery.message_id))
        service = await session.get(Service, delivery.sender_service_id)
        if message is None or service is None or message.content_ciphertext is None:
            raise PermanentFailure("the message or its sender is gone")
        profile = await session.get(Profile, delivery.fiscal_code)
        to = await _recipient_address(session, runtime, profile, service, delivery.fiscal_code)
        content: dict[str, Any] = orjson.loads(
            await decrypt_for(
                session,
                runtime.keyring,
                delivery.fiscal_code,
                message.content_ciphertext,
                content_aad(message.id),
            )
        )
    mail = compose_mail(
        runtime.settings,
        package="civio.notifications",
        template="message_alert",
        lang=citizen_language(profile.preferred_languages if profile else None),
        to=to,
        subject=content["subject"],
        context={
            "organization_name": service.organization_name,
            "service_name": service.service_name,
            "preview": preview(content["markdown"]),
            "link": f"{runtime.settings.public_url.rstrip('/')}/",
        },
    )
    mail["X-Italia-Messages-MessageId"] = delivery.message_id
    mail["X-Italia-Messages-NotificationId"] = delivery.notification_id
    # Stable across attempts: relays that deduplicate on Message-ID drop a resend.
    mail["Message-ID"] = f"<{delivery.dedup_key}@civio>"
    return mail


async def send_alert(runtime: Runtime, delivery: Delivery) -> None:
    mail = await build_alert(runtime, delivery)
    try:
        await send_mail(runtime.settings, mail)
    except MailDeliveryError as exc:
        if exc.permanent:
            raise PermanentFailure(str(exc)) from exc
        raise TemporaryFailure(str(exc)) from exc


@task(EMAIL_TASK)
async def send_email_job(runtime: Runtime, payload: dict[str, Any]) -> None:
    await run_delivery(runtime, str(payload["notification_id"]), "EMAIL", send_alert)
