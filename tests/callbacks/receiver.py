"""A real HTTP receiver for callback tests: a tiny server on a free local port, in a thread.

It records every request (headers and raw body) and answers from a script of statuses,
then 200 once the script is used up.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: Message  # case-insensitive .get / [], like a web framework's header mapping
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._answers: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(Received(self.path, self.headers, body))
                    status, headers = receiver._answers.pop(0) if receiver._answers else (200, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/civio/events"

    def answer(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """Queue answers for the next requests (then 200)."""
        with self._lock:
            self._answers.extend((status, dict(headers or {})) for status in statuses)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
