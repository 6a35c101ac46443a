"""ASGI middleware that guards the edge before any parsing, and marks every response.

Each is a plain ASGI callable doing a few comparisons per request: they sit in front of
message acceptance, the hot path the benchmark measures.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civio.core.problems import Problem, problem_response


class BodyTooLarge(HTTPException):
    """Raised while streaming a body without Content-Length; FastAPI re-raises HTTP errors."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {max_bytes} bytes.")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem(
            413,
            "Request entity too large",
            f"The request body exceeds the limit of {self.max_bytes} bytes.",
        )
        await problem_response(problem)(scope, receive, send)


class KeyRequired:
    """Refuse a request under ``prefix`` that carries a body but no API key, before the body
    is read: FastAPI reads (and buffers) a body before running the route's dependencies, so
    without this the gateway's 401 would come only after the whole upload."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        header: str,
        problem: Problem,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.header = header.lower().encode("latin-1")
        self.problem = problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in BODY_METHODS
            and scope["path"].startswith(self.prefix)
            and not any(name == self.header and value for name, value in scope["headers"])
        ):
            await problem_response(self.problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
# Sent only on requests that arrived over HTTPS (directly, or as a trusted proxy says).
STRICT_TRANSPORT = (b"strict-transport-security", b"max-age=31536000")


class ResponseHeaders:
    """Headers every response carries: ``nosniff`` always, ``Strict-Transport-Security`` over
    HTTPS, and ``Cache-Control: no-store`` (unless the route set its own) under the prefixes
    whose answers carry tokens or personal data, so no shared or browser cache keeps them."""

    def __init__(self, app: ASGIApp, *, private_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.private_prefixes = private_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(self.private_prefixes)
        secure = scope.get("scheme") == "https"

        async def marking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append(NOSNIFF)
                if secure:
                    headers.append(STRICT_TRANSPORT)
                if private and not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, marking_send)
