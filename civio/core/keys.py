"""Per-citizen data keys: created on first need, stored only wrapped by the master key.

A message may arrive before its citizen has a profile, so the key belongs to the fiscal
code, not to the profile row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.crypto import KeyRing, open_sealed, seal
from civio.core.db import Base


class DataKey(Base):
    __tablename__ = "data_keys"

    fiscal_code: Mapped[str] = mapped_column(Text, primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def data_key_for(session: AsyncSession, keyring: KeyRing, fiscal_code: str) -> bytes:
    """The citizen's data key, creating it if this is the first time it is needed."""
    cached = keyring.cached(fiscal_code)
    if cached is not None:
        return cached
    wrapped = await session.scalar(
        select(DataKey.wrapped_key).where(DataKey.fiscal_code == fiscal_code)
    )
    if wrapped is None:
        fresh, fresh_wrapped = keyring.new_data_key(fiscal_code)
        inserted = await session.scalar(
            insert(DataKey)
            .values(fiscal_code=fiscal_code, wrapped_key=fresh_wrapped)
            .on_conflict_do_nothing()
            .returning(DataKey.wrapped_key)
        )
        if inserted is not None:
            keyring.remember(fiscal_code, fresh)
            return fresh
        # Another transaction created it concurrently; use theirs.
        wrapped = await session.scalar(
            select(DataKey.wrapped_key).where(DataKey.fiscal_code == fiscal_code)
        )
        assert wrapped is not None
    return keyring.unwrap(fiscal_code, wrapped)


async def encrypt_for(
    session: AsyncSession, keyring: KeyRing, fiscal_code: str, plaintext: bytes, aad: str
) -> bytes:
    key = await data_key_for(session, keyring, fiscal_code)
    return seal(key, plaintext, aad.encode())


async def decrypt_for(
    session: AsyncSession, keyring: KeyRing, fiscal_code: str, envelope: bytes, aad: str
) -> bytes:
    key = await data_key_for(session, keyring, fiscal_code)
    return open_sealed(key, envelope, aad.encode())
