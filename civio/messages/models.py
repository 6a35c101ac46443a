from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class Message(Base):
    """Message metadata plus its content, encrypted under the recipient's data key.

    Keyed (fiscal_code, id) so everything about a citizen shares the leading key (the
    future distribution column).
    """

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_sender_service_id_created_at", "sender_service_id", "id"),)

    fiscal_code: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    sender_service_id: Mapped[str] = mapped_column(Text)
    sender_owner_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    time_to_live: Mapped[int] = mapped_column(Integer)
    feature_level_type: Mapped[str] = mapped_column(Text)
    # ACCEPTED | PROCESSED | REJECTED | FAILED
    status: Mapped[str] = mapped_column(Text, default="ACCEPTED")
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_pending: Mapped[bool] = mapped_column(Boolean, default=True)
    processing_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # NULL once REJECTED: IO never keeps the content of a rejected message.
    content_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MessageStatusChange(Base):
    """Every status a message went through, in order (the audit trail)."""

    __tablename__ = "message_status_changes"
    __table_args__ = (Index("ix_message_status_changes_message_id", "message_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
