from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class CallbackEvent(Base):
    """An event owed to a sender's callback URL, delivered in id order per service.

    The payload carries ids and statuses only, never personal data.
    """

    __tablename__ = "callback_events"
    __table_args__ = (
        # Operators' listing: a service's events, newest first.
        Index("ix_callback_events_service_id_id", "service_id", "id"),
        Index(
            "ix_callback_events_pending",
            "service_id",
            "id",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    service_id: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # PENDING | DELIVERED | FAILED
    status: Mapped[str] = mapped_column(Text, default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
