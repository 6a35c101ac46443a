"""What operators see of callback deliveries (CLI ``civio service callbacks`` and the admin API)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

CallbackStatus = Literal["PENDING", "DELIVERED", "FAILED"]


class CallbackEventOut(BaseModel):
    id: int
    type: str
    message_id: str
    status: CallbackStatus
    attempts: int
    last_response_status: int | None = None
    last_error: str | None = None
    created_at: str
    # Only while PENDING: when the next attempt is due.
    next_attempt_at: str | None = None
    delivered_at: str | None = None
    # Exactly the JSON body the sender receives (ids and statuses only).
    payload: dict[str, Any]


class CallbackEventList(BaseModel):
    items: list[CallbackEventOut]
