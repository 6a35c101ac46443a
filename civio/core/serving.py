"""The one HTTP server configuration civio runs with.

``civio serve`` and the benchmark's hello-world limit both start through ``serve_app``, so
the limit the benchmark reports is measured on exactly the server, loop and options that
civio itself uses.
"""

from __future__ import annotations

from typing import Any

import uvicorn

SERVER_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "timeout_graceful_shutdown": 5,
}


def serve_app(app: Any, host: str, port: int) -> None:
    """Run ``app`` (an ASGI application) until interrupted."""
    uvicorn.run(app, host=host, port=port, **SERVER_OPTIONS)
