from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class Owner(Base):
    """A sender account; rate limits count per owner, as IO's APIM counts per user."""

    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    email: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RateLimitWindow(Base):
    """An owner's current rate-limit window, shared by every process (services/ratelimit.py).

    ``requested`` sums the calls every process asked to lease in the window, granted or not;
    no foreign key, so the gateway's one statement touches this row alone.
    """

    __tablename__ = "rate_limit_windows"

    owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested: Mapped[int] = mapped_column(BigInteger)


class Service(Base):
    __tablename__ = "services"

    service_id: Mapped[str] = mapped_column(Text, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"), index=True)
    service_name: Mapped[str] = mapped_column(Text)
    department_name: Mapped[str] = mapped_column(Text)
    organization_name: Mapped[str] = mapped_column(Text)
    organization_fiscal_code: Mapped[str] = mapped_column(Text, index=True)
    authorized_recipients: Mapped[list[str]] = mapped_column(ARRAY(Text))
    authorized_cidrs: Mapped[list[str]] = mapped_column(ARRAY(Text))
    max_allowed_payment_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    require_secure_channels: Mapped[bool] = mapped_column(Boolean, default=False)
    is_visible: Mapped[bool] = mapped_column(Boolean, default=False)
    category: Mapped[str] = mapped_column(Text, default="STANDARD")
    service_metadata: Mapped[dict[str, Any]] = mapped_column(JSONB)
    groups: Mapped[list[str]] = mapped_column(ARRAY(Text))
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Subscription keys are stored only as SHA-256 digests (they are 256-bit random).
    primary_key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    secondary_key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    # Sender callbacks (beyond IO): where status events are POSTed, and the HMAC secret that
    # signs them (encrypted under a master-derived key: it must be usable, so not hashed).
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_secret_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class OrganizationLogo(Base):
    __tablename__ = "organization_logos"

    organization_fiscal_code: Mapped[str] = mapped_column(Text, primary_key=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
