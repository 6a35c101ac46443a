"""Accepting a message (IO's CreateMessage) and reading its status (getMessage)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.callbacks.service import emit
from civio.core.crypto import seal
from civio.core.db import table_of, transaction
from civio.core.groupcommit import GroupCommitter
from civio.core.ids import new_ulid
from civio.core.keys import data_keys_for, decrypt_for
from civio.core.problems import Problem, describe_errors, forbidden
from civio.core.queue import enqueue
from civio.core.runtime import Runtime
from civio.core.types import format_timestamp
from civio.messages import cta
from civio.messages.models import Message
from civio.messages.schemas import MessageContent, NewMessage
from civio.notifications.service import channel_statuses
from civio.ops.metrics import MESSAGES_ACCEPTED
from civio.profiles.models import Profile, ServicePreference
from civio.services.gateway import Caller, can_write_to, check_cidr
from civio.templates import service as templates

PROCESS_TASK = "messages.process"
# Built once: constructing ``insert(Message).values(...)`` per request cost ~14% of the
# API's CPU under load (py-spy); a Core statement with parameters is compiled once and cached.
INSERT_MESSAGE = insert(table_of(Message))


def content_aad(message_id: str) -> str:
    return f"message:{message_id}"


def summary_aad(message_id: str) -> str:
    return f"message-summary:{message_id}"


def _content(message: NewMessage) -> MessageContent:
    """The content the checks read: given, or (by template) the rendered Italian variant."""
    if message.content is None:
        raise ValueError("a message by template is checked once rendered")
    return message.content


def check_body_permissions(caller: Caller, message: NewMessage) -> None:
    """IO's body-permission gates: each fires only when the body uses the feature."""
    service, content = caller.service, _content(message)
    if content.eu_covid_cert is not None and not service.has("ApiMessageWriteEUCovidCert"):
        raise forbidden("You do not have enough permissions to send an EUCovidCert message")
    if (
        content.payment_data is not None
        and content.payment_data.payee is not None
        and not service.has("ApiMessageWriteWithPayee")
    ):
        raise forbidden("You do not have enough permissions to send a payment message with payee")
    if message.feature_level_type == "ADVANCED" and not service.has("ApiMessageWriteAdvanced"):
        raise forbidden("You do not have enough permissions to send a Premium message")
    if (
        content.third_party_data is not None
        and message.feature_level_type == "STANDARD"
        and not service.has("ApiThirdPartyMessageWrite")
    ):
        raise forbidden("You do not have enough permissions to send a third party message")


def check_calls_to_action(message: NewMessage) -> None:
    """A CTA block in the markdown must be one IO's app can show (civio/messages/cta.py);
    IO does not check it, and a sender would otherwise only learn from citizens that the
    button never appeared. A message by template has its rendered variants checked instead
    (``render_template``)."""
    if message.content is None:
        return
    try:
        cta.check_block(message.content.markdown)
    except cta.BadBlock as exc:
        raise Problem(400, "Invalid message structure", f"content.markdown: {exc}") from None


INVALID_STRUCTURE = "Invalid message structure"
# What only a message by template may carry: with content, these belong inside it.
TEMPLATE_FIELDS = ("template_version", "personalisation", "payment_data", "due_date")


def check_body_form(message: NewMessage) -> None:
    """Exactly one of ``content`` and ``template_id``; a content message keeps IO's shape."""
    if message.content is None and message.template_id is None:
        raise Problem(
            400,
            INVALID_STRUCTURE,
            "Give either content, or template_id with personalisation.",
        )
    if message.content is not None and message.template_id is not None:
        raise Problem(
            400,
            INVALID_STRUCTURE,
            "Give either content or template_id, not both.",
        )
    if message.content is not None:
        beside = [name for name in TEMPLATE_FIELDS if getattr(message, name) is not None]
        if beside:
            raise Problem(
                400,
                INVALID_STRUCTURE,
                f"{', '.join(beside)}: only with template_id; with content, payment_data and "
                "due_date go inside content.",
            )


async def render_template(
    runtime: Runtime, caller: Caller, message: NewMessage
) -> tuple[int, dict[str, MessageContent]]:
    """A message by template as one content per language: the template's variants
    rendered with the personalisation, each checked as IO checks a content (bounds, control
    characters) and for its CTA block; every problem is listed in one 400."""
    assert message.template_id is not None
    async with runtime.sessions() as session:
        rendered = await templates.render_template(
            session,
            caller.service.service_id,
            message.template_id,
            message.template_version,
            message.personalisation or {},
        )
    beside: dict[str, Any] = {}
    if message.payment_data is not None:
        beside["payment_data"] = message.payment_data.model_dump(mode="json", exclude_none=True)
    if message.due_date is not None:
        beside["due_date"] = message.due_date
    variants: dict[str, MessageContent] = {}
    problems: list[str] = []
    for lang, texts in rendered.variants.items():
        try:
            content = MessageContent.model_validate_json(orjson.dumps({**texts, **beside}))
        except ValidationError as exc:
            errors = [
                {**error, "loc": ("body", "rendered", lang, *error["loc"])}
                for error in exc.errors()
            ]
            problems.append(describe_errors(errors))
            continue
        try:
            cta.check_block(content.markdown)
        except cta.BadBlock as exc:
            problems.append(f"rendered.{lang}.markdown: {exc}")
            continue
        variants[lang] = content
    if problems:
        raise Problem(
            400,
            INVALID_STRUCTURE,
            f"template {rendered.template_id} version {rendered.version} rendered: "
            + "; ".join(problems),
        )
    return rendered.version, variants


def resolve_fiscal_code(path_fiscal_code: str | None, message: NewMessage) -> str:
    if path_fiscal_code is not None and message.fiscal_code is not None:
        raise Problem(
            400,
            "Bad parameters",
            "The fiscalcode parameter must be specified in the path or in the payload "
            "but not in both",
        )
    fiscal_code = path_fiscal_code or message.fiscal_code
    if fiscal_code is None:
        raise Problem(
            400,
            "Bad parameters",
            "The fiscalcode parameter must be specified in the path or in the payload",
        )
    return fiscal_code


def check_handler_rules(caller: Caller, fiscal_code: str, message: NewMessage) -> None:
    content = _content(message)
    third_party = content.third_party_data
    if third_party is not None:
        if third_party.configuration_id is None:
            raise forbidden(
                "You must provide a configuration_id for messages with remote content",
                title="No configuration id for remote content",
            )
        if third_party.has_attachments and message.feature_level_type != "ADVANCED":
            raise forbidden(
                "You are not allowed to send messages with attachmens with STANDARD messages, "
                "please use ADVANCED",
                title="Attachments call forbidden",
            )
        # Remote-content configurations are not provisioned on civio yet: none exists.
        raise Problem(
            404,
            "Remote Content Configuration NOT FOUND",
            f"Configuration {third_party.configuration_id} was not found",
        )
    can_write_to(caller, fiscal_code)
    payment = content.payment_data
    if payment is not None and payment.amount > caller.service.max_allowed_payment_amount:
        raise Problem(
            400,
            "Error while sending payment metadata",
            f"The requested amount ({payment.amount} cents) exceeds the maximum allowed for "
            f"this service ({caller.service.max_allowed_payment_amount} cents)",
        )


def stored_content(caller: Caller, message: NewMessage) -> dict[str, Any]:
    content = _content(message).model_dump(exclude_none=True)
    payment = content.get("payment_data")
    if payment is not None and "payee" not in payment:
        # IO defaults the payee to the sender's organization when processing; doing it
        # here is observably the same and spares the worker a decrypt/re-encrypt.
        payment["payee"] = {"fiscal_code": caller.service.organization_fiscal_code}
    return content


@dataclass(frozen=True)
class Accepted:
    """A validated message on its way into the accept transaction."""

    fiscal_code: str
    message_id: str
    sender_service_id: str
    sender_owner_id: str
    time_to_live: int
    feature_level_type: str
    plaintext: bytes
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


async def accept_message(
    runtime: Runtime, caller: Caller, path_fiscal_code: str | None, message: NewMessage
) -> tuple[str, str]:
    """Validate, authorise and durably accept: message, content and job in one commit.

    Concurrent accepts share that commit (``GroupCommitter``); this returns only once the
    transaction holding this message has committed.
    """
    check_body_form(message)
    check_calls_to_action(message)
    variants: dict[str, MessageContent] | None = None
    version = None
    if message.content is None:
        check_cidr(caller)  # before a template is looked up: an outside caller learns nothing
        version, variants = await render_template(runtime, caller, message)
        # Every variant carries the same payment, due date and flags: the checks that depend
        # on the content read them from the Italian one.
        message = message.model_copy(update={"content": variants["it"]})
    check_body_permissions(caller, message)
    check_cidr(caller)
    fiscal_code = resolve_fiscal_code(path_fiscal_code, message)
    check_handler_rules(caller, fiscal_code, message)
    if variants is None:
        stored = stored_content(caller, message)
    else:
        # All variants are kept (sealed like any content); the citizen's language picks one
        # when the message is processed (pipeline).
        stored = {
            "template": {"id": message.template_id, "version": version},
            "variants": {
                lang: stored_content(caller, message.model_copy(update={"content": content}))
                for lang, content in variants.items()
            },
        }
    accepted = Accepted(
        fiscal_code=fiscal_code,
        message_id=new_ulid(),
        sender_service_id=caller.service.service_id,
        sender_owner_id=caller.service.owner_id,
        time_to_live=message.time_to_live,
        feature_level_type=message.feature_level_type,
        plaintext=orjson.dumps(stored),
    )
    await accept_committer(runtime).submit(accepted)
    return fiscal_code, accepted.message_id


def accept_committer(runtime: Runtime) -> GroupCommitter[Accepted, None]:
    committer: GroupCommitter[Accepted, None] | None = runtime.components.get(__name__)
    if committer is None:

        async def write(batch: list[Accepted]) -> list[None]:
            await write_accepted(runtime, batch)
            return [None] * len(batch)

        committer = GroupCommitter(write, max_batch=runtime.settings.accept_max_batch)
        runtime.components[__name__] = committer
    return committer


async def write_accepted(runtime: Runtime, batch: list[Accepted]) -> None:
    """One transaction for a batch of accepted messages: rows, one processing job, events."""
    async with transaction(runtime.sessions) as session:
        keys = await data_keys_for(session, runtime.keyring, (a.fiscal_code for a in batch))
        await session.execute(
            INSERT_MESSAGE,
            [
                {
                    "fiscal_code": a.fiscal_code,
                    "id": a.message_id,
                    "sender_service_id": a.sender_service_id,
                    "sender_owner_id": a.sender_owner_id,
                    "created_at": a.created_at,
                    "time_to_live": a.time_to_live,
                    "feature_level_type": a.feature_level_type,
                    "status": "ACCEPTED",
                    "is_pending": True,
                    "processing_attempts": 0,
                    "content_ciphertext": seal(
                        keys[a.fiscal_code], a.plaintext, content_aad(a.message_id).encode()
                    ),
                }
                for a in batch
            ],
        )
        await enqueue(
            session, PROCESS_TASK, {"messages": [[a.fiscal_code, a.message_id] for a in batch]}
        )
        for a in batch:
            await emit(
                session,
                service_id=a.sender_service_id,
                message_id=a.message_id,
                event="message.status",
                data={"status": "ACCEPTED"},
            )
    MESSAGES_ACCEPTED.inc(len(batch))


async def read_message(
    runtime: Runtime, caller: Caller, fiscal_code: str, message_id: str
) -> dict[str, Any]:
    check_cidr(caller)
    async with runtime.sessions() as session:
        message = await session.scalar(
            select(Message).where(Message.fiscal_code == fiscal_code, Message.id == message_id)
        )
        if message is None:
            raise Problem(
                404,
                "Message not found",
                "The message that you requested was not found in the system.",
            )
        if message.sender_service_id != caller.service.service_id:
            raise forbidden(
                "You are not allowed to read this message, you can only read messages that "
                "you have sent"
            )
        body: dict[str, Any] = {
            "id": message.id,
            "fiscal_code": message.fiscal_code,
            "time_to_live": message.time_to_live,
            "created_at": format_timestamp(message.created_at),
            "sender_service_id": message.sender_service_id,
            "feature_level_type": message.feature_level_type,
        }
        # Content is shown once processed; it is never kept for a rejected message.
        if message.status == "PROCESSED" and message.content_ciphertext is not None:
            plaintext = await decrypt_for(
                session,
                runtime.keyring,
                fiscal_code,
                message.content_ciphertext,
                content_aad(message.id),
            )
            body["content"] = orjson.loads(plaintext)
        response: dict[str, Any] = {"message": body, "status": message.status}
        notification = await channel_statuses(session, message.id)
        if notification:
            response["notification"] = notification
        if (
            message.feature_level_type == "ADVANCED"
            and message.status == "PROCESSED"
            and caller.service.has("ApiMessageReadAdvanced")
        ):
            response["read_status"] = await read_status_of(
                session, runtime.settings.min_app_version_with_read_auth, message
            )
        return response


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


async def read_status_of(session: AsyncSession, min_app_version: str, message: Message) -> str:
    """READ/UNREAD, or UNAVAILABLE when the citizen denied it to this service or their app is
    too old (or unknown) to ask them."""
    profile = await session.get(Profile, message.fiscal_code)
    if profile is None:
        return "UNAVAILABLE"
    if min_app_version and (
        profile.last_app_version is None
        or _version_tuple(profile.last_app_version) < _version_tuple(min_app_version)
    ):
        return "UNAVAILABLE"
    preference = await session.get(
        ServicePreference,
        (
            message.fiscal_code,
            message.sender_service_id,
            profile.service_preferences_settings_version,
        ),
    )
    if preference is not None and preference.can_access_message_read_status is False:
        return "UNAVAILABLE"
    return "READ" if message.is_read else "UNREAD"
