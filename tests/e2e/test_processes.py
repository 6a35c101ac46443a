"""``civio serve --processes 2``: several server processes on one socket, each with its own
in-process worker, behave as one platform."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import httpx
import psutil

from civio.core.config import Settings
from tests.e2e.conftest import CIVIO, civio_env, free_port, wait_ready
from tests.factories import Factory, valid_message


async def test_two_server_processes_accept_and_process_every_message(
    settings: Settings, factory: Factory
) -> None:
    sender = await factory.sender()
    citizens = [await factory.citizen() for _ in range(4)]
    port = free_port()
    server = subprocess.Popen(
        [CIVIO, "serve", "--host", "127.0.0.1", "--port", str(port), "--processes", "2"],
        env=civio_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server, timeout=60)
        # The supervisor plus two server processes (and multiprocessing's resource tracker).
        pythons = [
            p
            for p in psutil.Process(server.pid).children()
            if "spawn_main" in " ".join(p.cmdline())
        ]
        assert len(pythons) == 2
        async with httpx.AsyncClient(base_url=url, headers=sender.headers) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"/api/v1/messages/{fc}", json=valid_message())
                    for fc in citizens * 10
                )
            )
            assert [r.status_code for r in responses] == [201] * 40
            locations = [r.headers["Location"] for r in responses]
            deadline = time.monotonic() + 30
            pending = set(locations)
            while pending:
                assert time.monotonic() < deadline, f"{len(pending)} never PROCESSED"
                for location in list(pending):
                    status = (await client.get(location)).json()["status"]
                    if status == "PROCESSED":
                        pending.discard(location)
                await asyncio.sleep(0.2)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    _, alive = psutil.wait_procs(pythons, timeout=10)
    assert not alive  # the supervisor took its server processes down with it
