"""Stopping ``civio serve`` the way service managers do (SIGTERM) stops everything it
started, as Ctrl-C does: nothing of the embedded PostgreSQL is left running."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import CIVIO, ROOT, free_port, wait_ready


def _cluster_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(attrs=["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(pgdata) in (process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.e2e
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_no_postgres_behind(stop: signal.Signals, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVIO_")}
    env["CIVIO_DATA_DIR"] = str(data_dir)
    port = free_port()
    process = subprocess.Popen(
        [CIVIO, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, timeout=90)
        pgdata = (data_dir / "pgdata").resolve()
        assert _cluster_processes(pgdata), "the embedded cluster runs while civio serves"
        process.send_signal(stop)
        process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _cluster_processes(pgdata) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _cluster_processes(pgdata) == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
