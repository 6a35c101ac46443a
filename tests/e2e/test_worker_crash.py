"""A worker killed (SIGKILL) between accept and process loses nothing and repeats nothing."""

from __future__ import annotations

import asyncio
import subprocess
import time

import httpx
import orjson
from sqlalchemy import func, select, text

from civio.core.config import Settings
from civio.messages.models import MessageStatusChange
from civio.messages.pipeline import job_refs
from tests.e2e.conftest import CIVIO, civio_env
from tests.factories import Factory, valid_message


async def job_status(factory: Factory, message_id: str) -> str | None:
    async with factory.runtime.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT status::text, payload FROM pgqueuer WHERE entrypoint = 'messages.process'")
        )
        for status, payload in rows:
            if message_id in (mid for _, mid in job_refs(orjson.loads(payload))):
                return str(status)
    return None


def start_worker(settings: Settings, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CIVIO, "worker"],
        env=civio_env(settings, CIVIO_JOB_HEARTBEAT_TIMEOUT_SECONDS="2", **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_sigkill_mid_processing_then_restart_processes_exactly_once(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    await factory.drain()  # start from an empty queue
    sender = await factory.sender()
    fc = await factory.citizen()
    response = await client.post(
        f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers
    )
    assert response.status_code == 201
    message_id = response.json()["id"]

    # The first worker stalls inside the processing transaction, row locked, job picked.
    doomed = start_worker(settings, CIVIO_FAULT_STALL_PROCESS_SECONDS="120")
    try:
        deadline = time.monotonic() + 30
        while await job_status(factory, message_id) != "picked":
            assert time.monotonic() < deadline, "the worker never picked the job"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # well inside the stalled transaction
    finally:
        doomed.kill()
        doomed.wait()
    assert (await factory.message_row(fc, message_id)).status == "ACCEPTED"

    survivor = start_worker(settings)
    try:
        deadline = time.monotonic() + 30
        while (await factory.message_row(fc, message_id)).status == "ACCEPTED":
            assert time.monotonic() < deadline, "the message was never processed"
            await asyncio.sleep(0.2)
    finally:
        survivor.terminate()
        survivor.wait(timeout=15)

    assert (await factory.message_row(fc, message_id)).status == "PROCESSED"
    async with factory.runtime.sessions() as session:
        changes = await session.scalar(
            select(func.count()).where(MessageStatusChange.message_id == message_id)
        )
    assert changes == 1
