"""Encryption at rest: the database holds no message content or email in clear."""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy import text

from civio.core.crypto import CryptoError, KeyRing, open_sealed, seal
from civio.core.keys import DataKey
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
