"""Tables of the management API (IO's CMS): owners' manage keys, each service's lifecycle
(its working copy and where it stands in review), its history, and the service keys kept
sealed so that the owner can read them back as IO's ``GET …/keys`` does.

They sit beside ``models.py`` (the live ``services`` row the gateway reads) and point at it;
a service created by the operator tools has no lifecycle row (see ``manage_service``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, LargeBinary, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class OwnerManageKey(Base):
    """An owner's manage key pair, stored only as SHA-256 digests (256-bit random keys)."""

    __tablename__ = "owner_manage_keys"

    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"), primary_key=True)
    primary_key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    secondary_key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ServiceLifecycle(Base):
    """Where a managed service stands: ``status`` is IO's lifecycle value, ``data`` the
    working copy in IO's CMS shape (``CmsServiceData`` plus ``metadata`` with ``topic_id``),
    ``released`` whether a version was ever approved and copied to the live row."""

    __tablename__ = "service_lifecycles"

    service_id: Mapped[str] = mapped_column(ForeignKey("services.service_id"), primary_key=True)
    status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    auto_publish: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    released: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ServiceHistoryEntry(Base):
    """One lifecycle or publication change, with the service's data as it was then."""

    __tablename__ = "service_history"
    __table_args__ = (Index("ix_service_history_service_id_id", "service_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.service_id"))
    kind: Mapped[str] = mapped_column(Text)  # lifecycle | publication
    value: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SealedServiceKeys(Base):
    """The service's subscription keys encrypted under a master-derived key (AAD: service
    and key type). The gateway still finds a key by its digest on ``services``; these
    copies exist only so that the owner's ``GET …/keys`` can show them, as IO does."""

    __tablename__ = "service_keys_sealed"

    service_id: Mapped[str] = mapped_column(ForeignKey("services.service_id"), primary_key=True)
    primary_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    secondary_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ServiceLogo(Base):
    """A service's logo as uploaded through ``PUT …/logo``: a PNG, already resized."""

    __tablename__ = "service_logos"

    service_id: Mapped[str] = mapped_column(ForeignKey("services.service_id"), primary_key=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
