"""A managed service's history: every lifecycle and publication change, with the service's
data as it was then, paged as IO's ``GET …/history`` (newest first by default, an opaque
``continuationToken`` when more items follow)."""

from __future__ import annotations

import base64
import binascii
import copy
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.problems import Problem
from civio.core.types import format_timestamp
from civio.services.copies import data_out
from civio.services.manage_models import ServiceHistoryEntry
from civio.services.manage_schemas import CmsServiceHistory, CmsServiceHistoryItem

Kind = Literal["lifecycle", "publication"]


def record(
    session: AsyncSession,
    service_id: str,
    kind: Kind,
    value: str,
    data: dict[str, Any],
    at: datetime,
    *,
    reason: str | None = None,
) -> None:
    session.add(
        ServiceHistoryEntry(
            service_id=service_id,
            kind=kind,
            value=value,
            reason=reason,
            data=copy.deepcopy(data),
            recorded_at=at,
        )
    )


def _token(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"h{entry_id}".encode()).decode().rstrip("=")


def _after(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith("h") or not raw[1:].isascii() or not raw[1:].isdigit():
            raise ValueError(raw)
        entry_id = int(raw[1:])
        if entry_id >= 2**63:  # not an id of a bigint column, and PostgreSQL would refuse it
            raise ValueError(raw)
        return entry_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem(
            400,
            "Invalid 'continuationToken' supplied in request query",
            "The continuationToken is not one this API returned.",
        ) from None


async def page(
    session: AsyncSession,
    service_id: str,
    *,
    order: Literal["ASC", "DESC"],
    limit: int,
    continuation_token: str | None,
) -> CmsServiceHistory:
    query = select(ServiceHistoryEntry).where(ServiceHistoryEntry.service_id == service_id)
    if continuation_token is not None:
        after = _after(continuation_token)
        query = query.where(
            ServiceHistoryEntry.id < after if order == "DESC" else ServiceHistoryEntry.id > after
        )
    key = ServiceHistoryEntry.id.desc() if order == "DESC" else ServiceHistoryEntry.id.asc()
    entries = list((await session.scalars(query.order_by(key).limit(limit + 1))).all())
    more = len(entries) > limit
    entries = entries[:limit]
    items = [
        CmsServiceHistoryItem.model_validate(
            {
                "id": service_id,
                "status": {"kind": e.kind, "value": e.value, "reason": e.reason},
                "last_update": format_timestamp(e.recorded_at),
                **data_out(e.data),
            }
        )
        for e in entries
    ]
    return CmsServiceHistory(
        continuationToken=_token(entries[-1].id) if more and entries else None, items=items
    )
