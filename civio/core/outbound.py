"""One pooled outbound HTTP client per event loop.

Building an ``httpx.AsyncClient`` creates an SSL context (loading the CA bundle), which
costs tens of milliseconds of CPU; per delivery, that alone capped push throughput at a few
dozen per second. The client is bound to the loop it was created on, hence one per loop.
"""

from __future__ import annotations

import asyncio
import weakref

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(5.0)
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def outbound_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        _clients[loop] = client
    return client
