from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class Notification(Base):
    """One per processed message that has at least one channel (IO writes none otherwise)."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    fiscal_code: Mapped[str] = mapped_column(Text, index=True)
    sender_service_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The message's created_at + time_to_live: past it nothing is sent (EXPIRED).
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotificationChannel(Base):
    """Delivery state of one channel (EMAIL or WEBHOOK = push) of a notification.

    ``status`` is NULL until the first outcome, then SENT | THROTTLED | EXPIRED | FAILED.
    """

    __tablename__ = "notification_channels"

    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when an attempt starts: a run that finds it set knows a previous worker may have
    # sent before dying, and reuses the same deduplication key.
    attempt_started_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Installation(Base):
    """A device (or browser) that receives pushes, bound to one citizen and one session.

    The push channel (device token or Web Push subscription) identifies a device, so it is
    stored encrypted under the citizen's key.
    """

    __tablename__ = "installations"

    installation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    fiscal_code: Mapped[str] = mapped_column(Text, index=True)
    session_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, index=True)
    platform: Mapped[str] = mapped_column(Text)
    push_channel_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
