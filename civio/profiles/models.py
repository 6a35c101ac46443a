from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class Profile(Base):
    """A citizen who has activated civio. Personal fields are stored encrypted."""

    __tablename__ = "profiles"

    fiscal_code: Mapped[str] = mapped_column(Text, primary_key=True)
    # LEGACY | AUTO | MANUAL (IO's servicePreferencesSettings.mode)
    mode: Mapped[str] = mapped_column(Text, default="AUTO")
    service_preferences_settings_version: Mapped[int] = mapped_column(Integer, default=0)
    is_inbox_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_email_validated: Mapped[bool] = mapped_column(Boolean, default=False)
    is_webhook_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    email_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Keyed hash of the lower-cased email, for uniqueness without plaintext.
    email_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, index=True)
    preferred_languages: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    # LEGACY mode only: {service_id: ["INBOX", "EMAIL", "WEBHOOK"]}
    blocked_inbox_or_channels: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    accepted_tos_version: Mapped[float | None] = mapped_column(Double, nullable=True)
    # NULL means IO's UNSET / UNKNOWN: the field is omitted from the profile.
    reminder_status: Mapped[str | None] = mapped_column(Text, nullable=True)
    push_notifications_content_type: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_app_version: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ServicePreference(Base):
    """Per-service switches of a citizen in AUTO/MANUAL mode, per settings version."""

    __tablename__ = "service_preferences"

    fiscal_code: Mapped[str] = mapped_column(Text, primary_key=True)
    service_id: Mapped[str] = mapped_column(Text, primary_key=True)
    settings_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    is_inbox_enabled: Mapped[bool] = mapped_column(Boolean)
    is_email_enabled: Mapped[bool] = mapped_column(Boolean)
    is_webhook_enabled: Mapped[bool] = mapped_column(Boolean)
    # NULL = UNKNOWN (never answered), read back as allowed; False = DENY.
    can_access_message_read_status: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class EmailValidationToken(Base):
    """``<token_id>:<validator>`` sent by email; only the validator's SHA-256 is stored, and
    the address only as its keyed hash (enough to check it is still the profile's)."""

    __tablename__ = "email_validation_tokens"

    token_id: Mapped[str] = mapped_column(Text, primary_key=True)
    validator_hash: Mapped[bytes] = mapped_column(LargeBinary)
    fiscal_code: Mapped[str] = mapped_column(Text, index=True)
    email_hash: Mapped[bytes] = mapped_column(LargeBinary)
    invalid_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Activation(Base):
    """Whether a citizen activated a SPECIAL service."""

    __tablename__ = "activations"

    fiscal_code: Mapped[str] = mapped_column(Text, primary_key=True)
    service_id: Mapped[str] = mapped_column(Text, primary_key=True)
    status: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SubscriptionEvent(Base):
    """Feed source: profile creations/deletions and per-service (un)subscriptions per day.

    IO's feed publishes ``sha256(uppercase(fiscal code))`` so that each body can match the
    hashes against its own list of citizens (io-pa-api.md §1.4); that wire value is
    binding, and any complete past day can be asked for, so every event must be able to
    give it back. A keyed hash (HMAC) cannot be turned back into it, so the event keeps
    the published hash itself, sealed (AES-256-GCM under a key derived from the master
    key, bound to the event's day and service). A plain sha256 in the table would name
    its citizen to anyone holding a copy of the database and a guess (fiscal codes are
    few and structured), and it outlives the citizen's profile and data key. Nothing
    looks events up by citizen, so no blind index is kept.

    Rows written before migration 0007 hold the bare 32-byte digest (read as it is).
    """

    __tablename__ = "subscription_events"
    __table_args__ = (Index("ix_subscription_events_day", "day"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    published_hash_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # NULL for profile-level events (creation/deletion).
    service_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    subscribed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
