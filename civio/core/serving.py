"""The one HTTP server configuration civio runs with.

``civio serve`` and the benchmark's hello-world limit both start through ``serve_app``, so
the limit the benchmark reports is measured on exactly the server, loop, options and number
of processes that civio itself uses.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from civio.core.logging import STDLIB_LOG_CONFIG

# A request's line and headers together may not exceed this many bytes, nor count more than
# this many header lines; beyond either the server answers 431 and closes the connection.
MAX_REQUEST_HEAD_BYTES = 64 * 1024
MAX_HEADER_COUNT = 100

SERVER_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    # uvicorn writes an unhandled request error with its whole message; this scrubs it.
    "log_config": STDLIB_LOG_CONFIG,
    "access_log": False,
    "timeout_graceful_shutdown": 5,
    # Forwarded headers are believed only from CIVIO_TRUSTED_PROXIES, by the app itself
    # (civio.app); uvicorn's own middleware would believe them from any loopback peer.
    "proxy_headers": False,
    "http": "civio.core.serving:BoundedHttpToolsProtocol",
    # The same bound for the pure-Python parser, should anyone run civio on h11.
    "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES,
}


class HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a request whose head is refused."""


def _head_too_large_response() -> bytes:
    body = json.dumps(
        {
            "title": "Request header fields too large",
            "status": 431,
            "detail": f"A request may carry at most {MAX_HEADER_COUNT} header fields and "
            f"{MAX_REQUEST_HEAD_BYTES} bytes of request line and headers.",
        }
    ).encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\n"
        b"x-content-type-options: nosniff\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


HEAD_TOO_LARGE = _head_too_large_response()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on each request's head.

    llhttp (behind httptools) accepts request heads of any size, and uvicorn buffers them
    whole before the app sees anything: a client could hold megabytes per connection. h11
    has ``h11_max_incomplete_event_size``; this is the same bound for httptools, plus one
    on the number of header lines. The cost is a few additions per header line and chunk.
    """

    _unparsed = 0  # bytes received since the last request boundary, while no body is read
    _parsed = 0  # bytes of the current request's target and header fields, as parsed
    _in_body = False
    _boundary_seen = False
    _refused = False

    def data_received(self, data: bytes) -> None:
        self._boundary_seen = False
        super().data_received(data)
        if self._boundary_seen:
            # A head or a message ended inside this chunk (the parsed count bounds that head);
            # count the next one afresh.
            self._unparsed = 0
        elif not self._in_body:
            # A head still incomplete: bound what uvicorn and httptools buffer for it.
            self._unparsed += len(data)
            if self._unparsed > MAX_REQUEST_HEAD_BYTES:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value))
        if len(self.headers) > MAX_HEADER_COUNT:
            self._refused = True
            raise HeadRefused

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > MAX_REQUEST_HEAD_BYTES:
            self._refused = True
            raise HeadRefused

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._boundary_seen = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._boundary_seen = True

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error, HeadRefused included, with 400.
        if self._refused:
            self._refuse()
        else:
            super().send_400_response(msg)

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()


# Allocations between young-generation collections (CPython's default is 700), and how
# many young (then middle) collections trigger the next older one (defaults 10, 10).
GC_THRESHOLDS = (10_000, 20, 50)


def tune_gc() -> None:
    """Move everything built at start-up (modules, FastAPI routes, SQLAlchemy metadata,
    Pydantic validators) out of the collector's reach, and collect young objects less often.

    Under load the default collector kept re-scanning those long-lived objects: with it,
    one ``civio serve`` accepted and processed ~910 msg/s with p99 219 ms; after
    ``gc.freeze()`` and these thresholds, ~1,290 msg/s with p99 89 ms (wrk, 64
    connections, this 2-vCPU machine). Reference cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve_app(app: Any, host: str, port: int, *, processes: int = 1) -> None:
    """Run an ASGI application until interrupted.

    With one process ``app`` is the application itself. With more, it must be the import
    string of a factory (``"package.module:function"``): uvicorn's supervisor starts that
    many processes sharing the listening socket, and each builds its own application
    (and calls ``tune_gc`` once it has).
    """
    if processes > 1:
        if not isinstance(app, str):
            raise TypeError("several processes need the import string of an app factory")
        uvicorn.run(app, host=host, port=port, workers=processes, factory=True, **SERVER_OPTIONS)
    else:
        tune_gc()
        uvicorn.run(app, host=host, port=port, **SERVER_OPTIONS)
