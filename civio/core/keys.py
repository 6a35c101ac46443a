"""Per-citizen data keys: created on first need, stored only wrapped by the master key.

A message may arrive before its citizen has a profile, so the key belongs to the fiscal
code, not to the profile row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from civio.core.crypto import KeyRing, open_sealed, seal
from civio.core.db import Base, table_of


class DataKey(Base):
    __tablename__ = "data_keys"

    fiscal_code: Mapped[str] = mapped_column(Text, primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


DATA_KEYS = table_of(DataKey)


async def data_key_for(session: AsyncSession, keyring: KeyRing, fiscal_code: str) -> bytes:
    """The citizen's data key, creating it if this is the first time it is needed."""
    cached = keyring.cached(fiscal_code)
    if cached is not None:
        return cached
    return (await data_keys_for(session, keyring, [fiscal_code]))[fiscal_code]


async def data_keys_for(
    session: AsyncSession, keyring: KeyRing, fiscal_codes: Iterable[str]
) -> dict[str, bytes]:
    """The data keys of many citizens in at most three statements, creating missing ones.

    New keys are inserted in fiscal-code order, so two transactions creating overlapping
    sets wait for each other instead of deadlocking.
    """
    keys: dict[str, bytes] = {}
    missing: list[str] = []
    for fiscal_code in sorted(set(fiscal_codes)):
        cached = keyring.cached(fiscal_code)
        if cached is not None:
            keys[fiscal_code] = cached
        else:
            missing.append(fiscal_code)
    if not missing:
        return keys
    stored = await _wrapped_keys(session, missing)
    fresh: dict[str, bytes] = {}
    rows = []
    for fiscal_code in missing:
        if fiscal_code not in stored:
            key, wrapped = keyring.new_data_key(fiscal_code)
            fresh[fiscal_code] = key
            rows.append({"fiscal_code": fiscal_code, "wrapped_key": wrapped})
    if rows:
        inserted = set(
            await session.scalars(
                insert(DATA_KEYS).on_conflict_do_nothing().returning(DATA_KEYS.c.fiscal_code),
                rows,
            )
        )
        for fiscal_code in inserted:
            keys[fiscal_code] = fresh[fiscal_code]
            keyring.remember(fiscal_code, fresh[fiscal_code])
        # Created concurrently by another transaction (now committed): use theirs.
        raced = [fiscal_code for fiscal_code in fresh if fiscal_code not in inserted]
        if raced:
            stored.update(await _wrapped_keys(session, raced))
    for fiscal_code, wrapped in stored.items():
        keys[fiscal_code] = keyring.unwrap(fiscal_code, wrapped)
    return keys


async def _wrapped_keys(session: AsyncSession, fiscal_codes: list[str]) -> dict[str, bytes]:
    rows = await session.execute(
        select(DataKey.fiscal_code, DataKey.wrapped_key).where(
            DataKey.fiscal_code.in_(fiscal_codes)
        )
    )
    return dict(rows.all())


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
