"""What the fault tests break and mend: their own PostgreSQL cluster, restartable receivers.

Each piece is real: a PostgreSQL cluster in a temp dir that a test may stop and start
(so the shared per-worker database of the other tests is never disturbed), HTTP receivers
that can go away and come back on the same port, and ``civio`` processes on real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from pgserver._commands import pg_ctl

from civio.core.embedded import ensure_cluster_user
from civio.core.migrate import upgrade


class OwnPostgres:
    """A PostgreSQL cluster of one test module, which its tests may stop and start."""

    def __init__(self) -> None:
        import pgserver

        ensure_cluster_user()  # the same lock as every other cluster start
        self.base = Path(tempfile.mkdtemp(prefix="civio-faults-", dir="/tmp"))
        self.pgdata = self.base / "pg"
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self._server.psql("CREATE DATABASE civio_faults;")
        self.url: str = self._server.get_uri("civio_faults")
        self._socket_dir = urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)["host"][0]
        upgrade(self.url)

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl(["-w", *args], pgdata=self.pgdata, user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        """Fast shutdown, as an operator's restart does: sessions are cut, open
        transactions rolled back."""
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self.pgdata / "log"), "start"
        )

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpReceiver:
    """A real HTTP server on a fixed local port that records every POST body and can be
    stopped and started again on the same port (a gateway or a sender's endpoint going
    away and coming back). ``delay`` makes each answer that many seconds late."""

    def __init__(self, port: int | None = None, *, status: int = 200) -> None:
        self.port = port or free_port()
        self.status = status
        self.delay = 0.0
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.bodies.append(body)
                    delay = receiver.delay
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the caller gave up waiting (its timeout): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def json_bodies(self) -> list[Any]:
        with self._lock:
            return [orjson.loads(body) for body in self.bodies]


def duplicates(values: list[str]) -> dict[str, int]:
    return {value: n for value, n in Counter(values).items() if n > 1}


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], what: str, *, timeout: float = 45.0
) -> None:
    """Poll ``check`` until it holds; a generous deadline, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.2)
