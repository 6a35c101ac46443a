"""Housekeeping for citizen sessions, run by every continuous worker."""

from __future__ import annotations

import structlog

from civio.auth.service import purge_expired_batch
from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.queue import periodic
from civio.core.runtime import Runtime

log = structlog.get_logger(__name__)

# A batch per transaction keeps each one short (row locks, WAL) however large the backlog
# (a national deployment expires hundreds of thousands of sessions a day).
PURGE_BATCH = 1_000
# Expired tokens already open nothing; the purge only reclaims rows and unbinds devices,
# so a few minutes of lag cost nothing.
PURGE_INTERVAL_SECONDS = 600.0


def _purge_interval(_settings: Settings) -> float:
    return PURGE_INTERVAL_SECONDS


@periodic("auth.purge_expired_sessions", every=_purge_interval)
async def purge_expired_sessions_job(runtime: Runtime, *, batch: int = PURGE_BATCH) -> int:
    """Delete expired sessions and their push bindings, one bounded batch per transaction,
    until none is left; returns how many sessions went."""
    removed = 0
    while True:
        async with transaction(runtime.sessions) as session:
            count = await purge_expired_batch(session, batch)
        removed += count
        if count < batch:
            break
    if removed:
        log.info("auth.sessions.purged", sessions=removed)
    return removed
