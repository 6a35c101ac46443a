from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.db import Base


class CitizenSession(Base):
    """A bearer session. Only the token's SHA-256 is stored; the identity the provider
    asserted (names, SPID email, birth date) is kept encrypted under the citizen's key."""

    __tablename__ = "citizen_sessions"
    __table_args__ = (
        Index("ix_citizen_sessions_fiscal_code", "fiscal_code"),
        # The purge finds expired sessions without reading the whole table.
        Index("ix_citizen_sessions_expires_at", "expires_at"),
    )

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    fiscal_code: Mapped[str] = mapped_column(Text)
    spid_level: Mapped[str] = mapped_column(Text)
    identity_provider: Mapped[str] = mapped_column(Text)
    identity_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LoginAttempt(Base):
    """An OpenID Connect authorization request in flight: state, nonce and PKCE verifier.

    Consumed once by the callback; a replayed or forged ``state`` finds nothing.
    """

    __tablename__ = "login_attempts"

    state: Mapped[str] = mapped_column(Text, primary_key=True)
    nonce: Mapped[str] = mapped_column(Text)
    code_verifier: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
