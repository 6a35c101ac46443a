"""The citizen's inbox: list (paged, filtered, searched), read one, change its status.

Only PROCESSED messages exist here. A page is one backward range scan of
``ix_messages_inbox`` (fiscal_code, is_archived, id); a search adds the GIN lookup of the
keyed token hashes, which are per-citizen and therefore already selective.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import ColumnElement, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.crypto import KeyRing, open_sealed
from civio.core.keys import DataKey, data_key_for
from civio.core.problems import Problem
from civio.core.types import format_timestamp
from civio.messages.cta import calls_to_action
from civio.messages.models import Message, MessageReadingChange
from civio.messages.schemas_citizen import (
    ArchivingChange,
    BulkChange,
    CitizenMessage,
    InboxItem,
    InboxPage,
    MessageStatusAttributes,
    ReadingChange,
)
from civio.messages.search import query_terms, search_key, token_hash
from civio.messages.service import content_aad, summary_aad
from civio.services.models import Service

_COLUMNS = (
    Message.id,
    Message.fiscal_code,
    Message.created_at,
    Message.sender_service_id,
    Message.time_to_live,
    Message.is_read,
    Message.is_archived,
    Message.summary_ciphertext,
    Service.service_name,
    Service.organization_name,
    Service.organization_fiscal_code,
)


# A literal, not a bind parameter: the partial indexes are declared WHERE status =
# 'PROCESSED', and PostgreSQL's cached generic plans (used after five executions on a
# pooled connection) can only match that predicate against a constant. With a parameter,
# searches fell back to scanning the citizen's whole inbox (bench/inbox.py: 50 ms → 1-8 ms).
PROCESSED: ColumnElement[str] = literal_column("'PROCESSED'")


def message_not_found() -> Problem:
    return Problem(404, "Message not found", "The message that you requested was not found.")


def _base(fiscal_code: str) -> Any:  # a Select over _COLUMNS
    return (
        select(*_COLUMNS)
        .outerjoin(Service, Service.service_id == Message.sender_service_id)
        .where(Message.fiscal_code == fiscal_code, Message.status == PROCESSED)
    )


async def _existing_data_key(
    session: AsyncSession, keyring: KeyRing, fiscal_code: str
) -> bytes | None:
    """The citizen's key if they have one; searching must not create keys."""
    if keyring.cached(fiscal_code) is None:
        exists = await session.scalar(
            select(DataKey.fiscal_code).where(DataKey.fiscal_code == fiscal_code)
        )
        if exists is None:
            return None
    return await data_key_for(session, keyring, fiscal_code)


def _item(row: Any, data_key: bytes | None, enrich: bool) -> InboxItem:
    item = InboxItem(
        id=row.id,
        fiscal_code=row.fiscal_code,
        created_at=format_timestamp(row.created_at),
        sender_service_id=row.sender_service_id,
        time_to_live=row.time_to_live,
    )
    if not enrich:
        return item
    summary: dict[str, Any] = {}
    if data_key is not None and row.summary_ciphertext is not None:
        summary = orjson.loads(
            open_sealed(data_key, row.summary_ciphertext, summary_aad(row.id).encode())
        )
    item.service_name = row.service_name or ""
    item.organization_name = row.organization_name or ""
    item.organization_fiscal_code = row.organization_fiscal_code or ""
    item.message_title = summary.get("title", "")
    item.category = summary.get("category")
    item.has_attachments = bool(summary.get("has_attachments", False))
    item.has_precondition = bool(summary.get("has_precondition", False))
    item.is_read = row.is_read
    item.is_archived = row.is_archived
    return item


async def list_messages(
    session: AsyncSession,
    keyring: KeyRing,
    fiscal_code: str,
    *,
    page_size: int,
    archived: bool,
    enrich: bool,
    maximum_id: str | None,
    minimum_id: str | None,
    query: str | None,
) -> InboxPage:
    stmt = _base(fiscal_code).where(Message.is_archived == archived)
    if maximum_id is not None:
        stmt = stmt.where(Message.id < maximum_id.upper())
    if minimum_id is not None:
        stmt = stmt.where(Message.id > minimum_id.upper())
    data_key = await _existing_data_key(session, keyring, fiscal_code)
    if query is not None:
        terms = query_terms(query)
        if not terms:
            raise Problem(400, "Invalid q", "The search needs at least one word of 2+ letters.")
        if data_key is None:
            return InboxPage(items=[])
        key = search_key(data_key)
        # The GIN lookup first, on its own: the hashes are keyed per citizen, so its hits are
        # already this citizen's. Left to itself the planner sometimes prefers walking the
        # whole inbox and filtering (e.g. while GIN's pending list is long), which costs
        # O(inbox) instead of O(hits).
        hits = (
            select(Message.id)
            .where(
                Message.search_tokens.contains([token_hash(key, t) for t in terms]),
                Message.status == PROCESSED,
            )
            .cte("search_hits")
            .prefix_with("MATERIALIZED")
        )
        stmt = stmt.where(Message.id.in_(select(hits.c.id)))
    rows = (await session.execute(stmt.order_by(Message.id.desc()).limit(page_size + 1))).all()
    more = len(rows) > page_size
    items = [_item(row, data_key, enrich) for row in rows[:page_size]]
    return InboxPage(
        items=items,
        prev=items[0].id if items else None,
        next=items[-1].id if more and items else None,
    )


async def get_message(
    session: AsyncSession, keyring: KeyRing, fiscal_code: str, message_id: str, *, enrich: bool
) -> CitizenMessage:
    stmt = _base(fiscal_code).add_columns(Message.content_ciphertext)
    row = (await session.execute(stmt.where(Message.id == message_id.upper()))).one_or_none()
    if row is None or row.content_ciphertext is None:
        raise message_not_found()
    data_key = await data_key_for(session, keyring, fiscal_code)
    content = orjson.loads(
        open_sealed(data_key, row.content_ciphertext, content_aad(row.id).encode())
    )
    item = _item(row, data_key, enrich)
    markdown = content.get("markdown")
    return CitizenMessage(
        **item.model_dump(),
        content=content,
        calls_to_action=calls_to_action(markdown) if isinstance(markdown, str) else None,
    )


async def change_status(
    session: AsyncSession,
    fiscal_code: str,
    message_id: str,
    change: ReadingChange | ArchivingChange | BulkChange,
) -> MessageStatusAttributes:
    message = await session.scalar(
        select(Message)
        .where(
            Message.fiscal_code == fiscal_code,
            Message.id == message_id.upper(),
            Message.status == PROCESSED,
        )
        .with_for_update()
    )
    if message is None:
        raise message_not_found()
    is_read, is_archived = message.is_read, message.is_archived
    if isinstance(change, ReadingChange):
        is_read = True
    elif isinstance(change, ArchivingChange):
        is_archived = change.is_archived
    else:
        is_archived = change.is_archived
        is_read = is_read or bool(change.is_read)
    await session.execute(
        update(Message)
        .where(Message.fiscal_code == fiscal_code, Message.id == message.id)
        .values(is_read=is_read, is_archived=is_archived)
    )
    await session.execute(
        insert(MessageReadingChange).values(
            fiscal_code=fiscal_code, message_id=message.id, is_read=is_read, is_archived=is_archived
        )
    )
    return MessageStatusAttributes(is_read=is_read, is_archived=is_archived)
