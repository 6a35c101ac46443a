"""Outbound HTTP clients, pooled per event loop: one for operator-configured destinations,
and guarded ones for URLs that citizens and senders choose.

Building an ``httpx.AsyncClient`` creates an SSL context (loading the CA bundle), which
costs tens of milliseconds of CPU; per delivery, that alone capped push throughput at a few
dozen per second. A client is bound to the loop it was created on, hence one per loop.

The guarded client connects only to addresses its ``OutboundGuard`` allows
(``civio.core.ssrf``). It is httpcore's connection pool with a network backend of its own
(httpcore's extension point for how connections are opened): the backend resolves the
name, checks every address and connects to a checked address, so the address checked is
the address used, however the name resolves by then (DNS rebinding). TLS and ``Host``
stay on the name: httpcore passes the name to the backend and verifies the certificate
for it. The guarded client reads nothing from the environment: no proxy (a proxy would
resolve the name itself, out of the guard's sight), no ``.netrc`` credentials.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
import structlog

from civio.core.ssrf import DestinationRefused, OutboundGuard

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(5.0)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)
_guarded: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[OutboundGuard, httpx.AsyncClient]
] = weakref.WeakKeyDictionary()


def outbound_client() -> httpx.AsyncClient:
    """For destinations the operator configured (the push gateway): not guarded."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=False, limits=LIMITS)
        _clients[loop] = client
    return client


def guarded_client(guard: OutboundGuard) -> httpx.AsyncClient:
    """For URLs that citizens and senders chose (Web Push endpoints, callback URLs)."""
    loop = asyncio.get_running_loop()
    clients = _guarded.setdefault(loop, {})
    client = clients.get(guard)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            transport=GuardedTransport(guard),
            timeout=DEFAULT_TIMEOUT,
            follow_redirects=False,
            # No credentials from ~/.netrc for hosts that others chose.
            trust_env=False,
        )
        clients[guard] = client
    return client


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the guard allows (see the module doc)."""

    def __init__(self, guard: OutboundGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not self.guard.enforce:
            return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.guard.addresses(host, port)
        except DestinationRefused as exc:
            # The category only: the host may be a citizen's endpoint.
            log.warning("outbound.refused", category=exc.category, port=port)
            raise
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("name resolution timed out") from exc
        except OSError as exc:  # the name does not resolve (now): worth another try
            raise httpcore.ConnectError(f"name resolution failed: {exc}") from exc
        error: Exception = httpcore.ConnectError("no address")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("is a Unix socket", category="unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


# httpcore's errors as httpx's, most specific first (what httpx's own transport does), so
# callers of a guarded client handle the same exceptions as with any other client.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over httpcore's pool with the ``GuardedBackend``."""

    def __init__(
        self,
        guard: OutboundGuard,
        *,
        limits: httpx.Limits = LIMITS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(guard),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
