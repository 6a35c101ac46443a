"""Encryption at rest: the database holds no message content or email in clear."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from sqlalchemy import text

from civio.core.crypto import CryptoError, KeyRing, load_master_key, open_sealed, seal
from civio.core.db import transaction
from civio.core.keys import DataKey, data_keys_for
from tests.factories import Factory, random_fiscal_code


async def _dump_all_tables(factory: Factory) -> bytes:
    """Every row of every civio table, as PostgreSQL prints it (plain SQL, no ORM)."""
    async with factory.runtime.engine.connect() as connection:
        tables = (
            await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        ).scalars()
        dump = []
        for table in list(tables):
            rows = await connection.execute(text(f'SELECT t::text FROM "{table}" t'))  # noqa: S608
            dump.extend(r[0] for r in rows)
    return "\n".join(dump).encode()


async def test_raw_tables_hold_no_subject_markdown_or_email(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    marker = secrets.token_hex(8)
    subject = f"Subject {marker}"
    markdown = f"Secret body {marker} " + "x" * 80
    email = f"citizen-{marker}@example.org"
    sender = await factory.sender()
    fc = await factory.citizen(email=email)
    response = await client.post(
        f"/api/v1/messages/{fc}",
        json={"content": {"subject": subject, "markdown": markdown}},
        headers=sender.headers,
    )
    assert response.status_code == 201
    await factory.drain()
    # The message is readable through the API...
    got = await client.get(response.headers["Location"], headers=sender.headers)
    assert got.json()["message"]["content"]["subject"] == subject
    # ...but nothing in the database, read directly, contains it.
    dump = await _dump_all_tables(factory)
    assert marker.encode() not in dump
    assert marker.encode().hex().encode() not in dump  # not even hex-escaped bytea


async def test_data_key_is_created_on_first_message_before_any_profile(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = random_fiscal_code()
    async with factory.runtime.sessions() as session:
        assert await session.get(DataKey, fc) is None
    response = await client.post(
        f"/api/v1/messages/{fc}",
        json={"content": {"subject": "A subject here", "markdown": "m" * 90}},
        headers=sender.headers,
    )
    assert response.status_code == 201
    async with factory.runtime.sessions() as session:
        key = await session.get(DataKey, fc)
    assert key is not None
    assert len(key.wrapped_key) > 32  # wrapped, not the raw 32-byte key


def test_data_keys_are_bound_to_their_owner_and_master_key() -> None:
    ring = KeyRing(secrets.token_bytes(32))
    key, wrapped = ring.new_data_key("AAAAAA00A00A000A")
    other_ring = KeyRing(secrets.token_bytes(32))
    with pytest.raises(CryptoError):
        other_ring.unwrap("AAAAAA00A00A000A", wrapped)
    with pytest.raises(CryptoError):
        ring.unwrap("BBBBBB00A00A000B", wrapped)  # bound to its owner: not another's key
    fresh = KeyRing(ring._wrapping_key)
    with pytest.raises(CryptoError):
        fresh.unwrap("AAAAAA00A00A000A", wrapped)
    sealed = seal(key, b"hello", b"message:1")
    assert open_sealed(key, sealed, b"message:1") == b"hello"
    with pytest.raises(CryptoError):
        open_sealed(key, sealed, b"message:2")  # content cannot be moved to another message


async def test_concurrent_first_uses_of_overlapping_citizens_agree_on_one_key_each(
    factory: Factory,
) -> None:
    """Two accept batches creating keys for overlapping citizens at once (each process with
    its own cache): every citizen ends with one key, and both batches encrypt under it."""
    master = load_master_key(factory.settings)
    codes = [random_fiscal_code() for _ in range(6)]

    async def batch(order: list[str]) -> dict[str, bytes]:
        ring = KeyRing(master)  # a fresh process: nothing cached
        async with transaction(factory.runtime.sessions) as session:
            keys = await data_keys_for(session, ring, order)
            await asyncio.sleep(0.05)  # hold the new rows uncommitted while the other races
            return keys

    first, second = await asyncio.gather(batch(codes[:4]), batch(list(reversed(codes))))
    for code in codes[:4]:
        assert first[code] == second[code]
    async with factory.runtime.engine.connect() as connection:
        stored = await connection.scalar(
            text("SELECT count(*) FROM data_keys WHERE fiscal_code = ANY(:codes)"),
            {"codes": codes},
        )
    assert stored == len(codes)
