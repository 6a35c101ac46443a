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
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class Message(Base):
    """Message metadata plus its content, encrypted under the recipient's data key.

    Keyed (fiscal_code, id) so everything about a citizen shares the leading key (the
    future distribution column).
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_sender_service_id_created_at", "sender_service_id", "id"),
        # The inbox: one backward range scan per page, whatever the inbox size.
        Index(
            "ix_messages_inbox",
            "fiscal_code",
            "is_archived",
            "id",
            postgresql_where=text("status = 'PROCESSED'"),
        ),
        # Search: keyed per-citizen token hashes (no plaintext in the index).
        Index(
            "ix_messages_search_tokens",
            "search_tokens",
            postgresql_using="gin",
            postgresql_where=text("status = 'PROCESSED'"),
        ),
    )

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
    # The citizen's side of the message.
    is_read: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Encrypted {title, category, has_attachments, has_precondition}: what a list item shows,
    # without decrypting the whole content.
    summary_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    search_tokens: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger), nullable=True)


class MessageReadingChange(Base):
    """Every read/archive change the citizen made, in order (IO keeps each as a version)."""

    __tablename__ = "message_reading_changes"
    __table_args__ = (Index("ix_message_reading_changes_message", "fiscal_code", "message_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    fiscal_code: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text)
    is_read: Mapped[bool] = mapped_column(Boolean)
    is_archived: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MessageStatusChange(Base):
    """Every status a message went through, in order (the audit trail)."""

    __tablename__ = "message_status_changes"
    __table_args__ = (Index("ix_message_status_changes_message_id", "message_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
