"""Expired sessions do not pile up: a periodic job deletes them and the devices they bound."""

from __future__ import annotations

import secrets

import httpx
from sqlalchemy import text

from civio.auth.service import hash_token
from civio.auth.tasks import purge_expired_sessions_job
from civio.core.config import Settings
from civio.core.runtime import Runtime
from tests.factories import login


async def register_device(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    installation_id = secrets.token_hex(16)
    response = await client.put(
        f"/api/communication/v1/installations/{installation_id}",
        json={"platform": "apns", "pushChannel": secrets.token_hex(32)},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return installation_id


async def expire(runtime: Runtime, headers: dict[str, str]) -> bytes:
    """Move a session's expiry into the past, as thirty days of waiting would."""
    token_hash = hash_token(headers["Authorization"].removeprefix("Bearer "))
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE citizen_sessions SET expires_at = now() - interval '1 second' "
                "WHERE token_hash = :h"
            ),
            {"h": token_hash},
        )
    return token_hash


async def test_expired_sessions_and_their_devices_go_and_live_ones_stay(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    fc, live = await login(client, settings)
    live_device = await register_device(client, live)
    expired: list[tuple[bytes, str]] = []
    for _ in range(5):
        _, headers = await login(client, settings, fc)
        device = await register_device(client, headers)
        expired.append((await expire(runtime, headers), device))

    # A batch smaller than the backlog: the job keeps going until nothing expired is left.
    removed = await purge_expired_sessions_job(runtime, batch=2)
    assert removed >= 5

    async with runtime.engine.connect() as connection:
        sessions = set(
            (
                await connection.execute(
                    text("SELECT token_hash FROM citizen_sessions WHERE fiscal_code = :fc"),
                    {"fc": fc},
                )
            ).scalars()
        )
        devices = set(
            (
                await connection.execute(
                    text("SELECT installation_id FROM installations WHERE fiscal_code = :fc"),
                    {"fc": fc},
                )
            ).scalars()
        )
    assert sessions == {hash_token(live["Authorization"].removeprefix("Bearer "))}
    assert devices == {live_device}
    assert not {token_hash for token_hash, _ in expired} & sessions
    # The live session still works.
    assert (await client.get("/api/identity/v1/profile", headers=live)).status_code == 200
