"""A real ``civio serve`` process on a real socket, sharing the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from civio.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CIVIO = str(Path(sys.executable).parent / "civio")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def civio_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # Explicitly dev: an external database URL alone would mean production.
            "CIVIO_ENV": "dev",
            "CIVIO_TEST_LOGIN_PASSWORD": settings.test_login_password,
            "CIVIO_DATABASE_URL": settings.database_url,
            "CIVIO_MASTER_KEY": settings.master_key,
            "CIVIO_ADMIN_TOKEN": settings.admin_token,
            "CIVIO_DATA_DIR": str(settings.data_dir),
            "CIVIO_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"civio exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


@dataclass
class LiveServer:
    url: str
    admin_token: str

    def create_service(self, **payload: object) -> dict[str, object]:
        body = {
            "name": "Live service",
            "organization_name": "Comune di Prova",
            "organization_fiscal_code": "12345678901",
            **payload,
        }
        response = httpx.post(
            f"{self.url}/admin/v1/services",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[LiveServer]:
    port = free_port()
    process = subprocess.Popen(
        [CIVIO, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"],
        env=civio_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield LiveServer(url, settings.admin_token)
    finally:
        process.terminate()
        process.wait(timeout=15)
