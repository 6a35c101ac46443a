"""A worker killed (SIGKILL) in the middle of processing a batch loses nothing and repeats
nothing.

The stall is injected from outside, with nothing in civio's code: a trigger created by the
test makes the processing transaction wait for an advisory lock the test holds, after it
has locked the batch's rows and written their outcome but before it commits. The worker is
killed there, the lock released, a second worker started, and the messages counted.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy import text

from civio.core.config import Settings
from civio.core.db import asyncpg_dsn
from civio.messages.pipeline import job_refs
from tests.e2e.conftest import CIVIO, civio_env
from tests.factories import Factory, valid_message

STALL_LOCK = 0x7374616C6C  # "stall"
MESSAGES = 8


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CIVIO, "worker"],
        env=civio_env(settings, CIVIO_JOB_HEARTBEAT_TIMEOUT_SECONDS="2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@asynccontextmanager
async def stall_before_commit(factory: Factory) -> AsyncIterator[asyncpg.Connection]:
    """Every processing transaction stops at its status-change insert (after the outcome
    update) until the yielded connection releases ``STALL_LOCK``."""
    holder = await asyncpg.connect(asyncpg_dsn(factory.runtime.url))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", STALL_LOCK)
        await holder.execute(
            "CREATE FUNCTION tests_stall() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN PERFORM pg_advisory_xact_lock_shared({STALL_LOCK}); RETURN NULL; END $$"
        )
        await holder.execute(
            "CREATE TRIGGER tests_stall BEFORE INSERT ON message_status_changes "
            "FOR EACH STATEMENT EXECUTE FUNCTION tests_stall()"
        )
        yield holder
    finally:
        await holder.execute("SELECT pg_advisory_unlock_all()")
        await holder.execute("DROP TRIGGER IF EXISTS tests_stall ON message_status_changes")
        await holder.execute("DROP FUNCTION IF EXISTS tests_stall()")
        await holder.close()


async def jobs_of(factory: Factory, message_ids: set[str]) -> list[tuple[int, str]]:
    """(job id, status) of the processing jobs that cover these messages."""
    async with factory.runtime.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT id, status::text, payload FROM pgqueuer WHERE entrypoint = :name"),
            {"name": "messages.process"},
        )
        return [
            (int(job_id), str(status))
            for job_id, status, payload in rows
            if {mid for _, mid in job_refs(orjson.loads(payload))} & message_ids
        ]


async def stalled_transactions(holder: asyncpg.Connection) -> int:
    """Transactions waiting for the stall lock: each is inside a batch, outcome written."""
    count = await holder.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND ((classid::bigint << 32) | objid::bigint) = $1",
        STALL_LOCK,
    )
    return int(count)


async def statuses(factory: Factory, message_ids: set[str]) -> dict[str, Any]:
    async with factory.runtime.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT id, status FROM messages WHERE id = ANY(:ids)"), {"ids": list(message_ids)}
        )
        return {str(mid): str(status) for mid, status in rows}


async def status_changes(factory: Factory, message_ids: set[str]) -> dict[str, int]:
    async with factory.runtime.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT message_id, count(*) FROM message_status_changes "
                "WHERE message_id = ANY(:ids) GROUP BY message_id"
            ),
            {"ids": list(message_ids)},
        )
        return {str(mid): int(count) for mid, count in rows}


async def test_sigkill_mid_batch_then_restart_processes_each_message_exactly_once(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    await factory.drain()  # start from an empty queue
    sender = await factory.sender()
    citizens = [await factory.citizen() for _ in range(MESSAGES)]

    async with stall_before_commit(factory) as holder:
        responses = await asyncio.gather(
            *(
                client.post(f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers)
                for fc in citizens
            )
        )
        assert [r.status_code for r in responses] == [201] * MESSAGES
        message_ids = {r.json()["id"] for r in responses}

        doomed = start_worker(settings)
        try:
            # Every job picked, every one of its transactions stopped before commit.
            deadline = time.monotonic() + 30
            while True:
                jobs = await jobs_of(factory, message_ids)
                if all(status == "picked" for _, status in jobs) and await stalled_transactions(
                    holder
                ) == len(jobs):
                    break
                assert time.monotonic() < deadline, f"the worker never stalled: {jobs}"
                await asyncio.sleep(0.1)
        finally:
            doomed.kill()
            doomed.wait()
        # The outcomes were written but never committed.
        assert set((await statuses(factory, message_ids)).values()) == {"ACCEPTED"}
        # Released: the dead worker's transactions find no client to commit for them.

    survivor = start_worker(settings)
    try:
        deadline = time.monotonic() + 30
        while "ACCEPTED" in (await statuses(factory, message_ids)).values():
            assert time.monotonic() < deadline, "the messages were never processed"
            await asyncio.sleep(0.2)
    finally:
        survivor.terminate()
        survivor.wait(timeout=15)

    # Zero lost, zero duplicated.
    assert await statuses(factory, message_ids) == dict.fromkeys(message_ids, "PROCESSED")
    assert await status_changes(factory, message_ids) == dict.fromkeys(message_ids, 1)


def test_no_fault_injection_is_left_in_the_settings() -> None:
    """Faults are injected from outside (as above), never by a switch in production code."""
    assert not [name for name in Settings.model_fields if name.startswith("fault_")]
