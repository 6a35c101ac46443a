"""The one HTTP server configuration civio runs with.

``civio serve`` and the benchmark's hello-world limit both start through ``serve_app``, so
the limit the benchmark reports is measured on exactly the server, loop, options and number
of processes that civio itself uses.
"""

from __future__ import annotations

from typing import Any

import uvicorn

SERVER_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "timeout_graceful_shutdown": 5,
}


def serve_app(app: Any, host: str, port: int, *, processes: int = 1) -> None:
    """Run an ASGI application until interrupted.

    With one process ``app`` is the application itself. With more, it must be the import
    string of a factory (``"package.module:function"``): uvicorn's supervisor starts that
    many processes sharing the listening socket, and each builds its own application.
    """
    if processes > 1:
        if not isinstance(app, str):
            raise TypeError("several processes need the import string of an app factory")
        uvicorn.run(app, host=host, port=port, workers=processes, factory=True, **SERVER_OPTIONS)
    else:
        uvicorn.run(app, host=host, port=port, **SERVER_OPTIONS)
