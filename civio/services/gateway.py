"""civio's own API gateway (what IO does in Azure API Management).

Order of checks, as IO: subscription key (401) → rate limit (429) → groups (403) →
service → body decoding (400) → body permission gates (403) → CIDR (403) → handler.
The rate limit is one per owner for the whole deployment, leased from a shared counter
(``ratelimit``). Service lookups are cached for ``service_cache_seconds`` so provisioning
changes reach a running server within a second without a query per request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import Request, Response
from sqlalchemy import or_, select

from civio.core.problems import Problem, forbidden
from civio.core.runtime import Runtime
from civio.services.groups import KNOWN_GROUPS
from civio.services.models import Owner, Service
from civio.services.ratelimit import (
    PostgresWindows,
    RateLimiter,
    RedisWindows,
    StoreUnavailable,
    WindowStore,
)
from civio.services.service import hash_key

log = structlog.get_logger(__name__)

KEY_HEADER = "Ocp-Apim-Subscription-Key"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CallerService:
    """An immutable snapshot of the calling service, as the gateway saw it."""

    service_id: str
    owner_id: str
    owner_email: str
    service_name: str
    organization_name: str
    organization_fiscal_code: str
    groups: frozenset[str]
    authorized_recipients: frozenset[str]
    authorized_cidrs: tuple[IPNetwork, ...]
    max_allowed_payment_amount: int
    require_secure_channels: bool
    category: str

    @classmethod
    def of(cls, service: Service, owner: Owner) -> CallerService:
        return cls(
            service_id=service.service_id,
            owner_id=owner.id,
            owner_email=owner.email,
            service_name=service.service_name,
            organization_name=service.organization_name,
            organization_fiscal_code=service.organization_fiscal_code,
            groups=frozenset(service.groups),
            authorized_recipients=frozenset(service.authorized_recipients),
            authorized_cidrs=tuple(
                ipaddress.ip_network(c, strict=False) for c in service.authorized_cidrs
            ),
            max_allowed_payment_amount=service.max_allowed_payment_amount,
            require_secure_channels=service.require_secure_channels,
            category=service.category,
        )

    def has(self, group: str) -> bool:
        return group in self.groups


@dataclass
class Caller:
    service: CallerService
    client_ip: str | None


@dataclass
class Gateway:
    runtime: Runtime
    limiter: RateLimiter
    _cache: dict[bytes, tuple[float, CallerService | None]] = field(default_factory=dict)
    # One lookup per key at a time: when a cached entry expires under load, the concurrent
    # requests for that key wait for a single query instead of each sending their own.
    _lookups: dict[bytes, asyncio.Future[CallerService | None]] = field(default_factory=dict)

    @classmethod
    def build(cls, runtime: Runtime) -> Gateway:
        store: WindowStore
        if runtime.settings.redis_url:
            if runtime.redis is None:
                raise RuntimeError("CIVIO_REDIS_URL is set but the runtime has no Redis client")
            store = RedisWindows(runtime.redis)
        else:
            store = PostgresWindows(runtime.engine)
        return cls(runtime, RateLimiter(store, runtime.settings.rate_limit_window_seconds))

    async def service_for_key(self, key: str) -> CallerService | None:
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        running = self._lookups.get(digest)
        if running is not None:
            return await asyncio.shield(running)
        lookup = asyncio.get_running_loop().create_future()
        self._lookups[digest] = lookup
        try:
            snapshot = await self._load(digest)
        except asyncio.CancelledError:
            lookup.cancel()
            raise
        except Exception as exc:
            lookup.set_exception(exc)
            lookup.exception()  # marked retrieved: waiters, if any, get it too
            raise
        else:
            lookup.set_result(snapshot)
        finally:
            del self._lookups[digest]
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[digest] = (now + self.runtime.settings.service_cache_seconds, snapshot)
        return snapshot

    async def _load(self, digest: bytes) -> CallerService | None:
        async with self.runtime.sessions() as session:
            row = (
                await session.execute(
                    select(Service, Owner)
                    .join(Owner, Owner.id == Service.owner_id)
                    .where(
                        or_(
                            Service.primary_key_hash == digest, Service.secondary_key_hash == digest
                        )
                    )
                )
            ).one_or_none()
        return CallerService.of(row[0], row[1]) if row is not None else None

    def rate_limit_for(self, service: CallerService) -> int | None:
        if service.has("ApiNoRateLimit"):
            return None
        if service.has("ApiRateLimit250"):
            return self.runtime.settings.rate_limit_calls_250
        return self.runtime.settings.rate_limit_calls

    def client_ip(self, request: Request) -> str | None:
        """The caller's address. Behind ``CIVIO_TRUSTED_PROXIES`` it is already the one the
        proxies forwarded: the app's ProxyHeadersMiddleware rewrote the peer (civio.app)."""
        return request.client.host if request.client else None


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Access denied", detail, headers={"WWW-Authenticate": KEY_HEADER})


async def enforce_rate_limit(
    gateway: Gateway, owner_id: str, limit: int, response: Response
) -> None:
    """One call against the owner's shared window: 429 (with IO's headers) when it is spent,
    503 when the counter cannot be reached; the remaining calls go on the response."""
    try:
        verdict = await gateway.limiter.hit(owner_id, limit)
    except StoreUnavailable:
        log.warning("gateway.rate_limit.store_unavailable", owner_id=owner_id)
        raise Problem(
            503,
            "Service unavailable",
            "The rate limit cannot be checked at the moment. Try again shortly.",
            headers={"Retry-After": "1"},
        ) from None
    retry = str(max(1, math.ceil(verdict.reset_seconds)))
    if not verdict.allowed:
        raise Problem(
            429,
            "Too many requests",
            f"Rate limit is exceeded. Try again in {retry} seconds.",
            headers={
                "Retry-After": retry,
                "x-rate-limit-remaining": "0",
                "x-rate-limit-retry-after": retry,
            },
        )
    response.headers["x-rate-limit-remaining"] = str(verdict.remaining)


def require_groups(*allowed: str) -> Callable[[Request, Response], Coroutine[Any, Any, Caller]]:
    """Dependency: authenticate the key, rate-limit its owner, check the endpoint's groups."""
    allowed_set = frozenset(allowed)

    async def dependency(request: Request, response: Response) -> Caller:
        key = request.headers.get(KEY_HEADER)
        if not key:
            raise unauthorized(
                "Access denied due to missing subscription key. Make sure to include "
                f"the {KEY_HEADER} header when making requests."
            )
        gateway = get_gateway(request)
        service = await gateway.service_for_key(key)
        if service is None:
            raise unauthorized("Access denied due to invalid subscription key.")
        limit = gateway.rate_limit_for(service)
        if limit is not None:
            await enforce_rate_limit(gateway, service.owner_id, limit, response)
        if not service.groups & frozenset(KNOWN_GROUPS) - {"ApiNoRateLimit", "ApiRateLimit250"}:
            raise forbidden(
                "You are not part of any valid scope, you should ask the administrator to "
                "give you the required permissions.",
                title="User has no valid scopes",
            )
        if not service.groups & allowed_set:
            raise forbidden()
        return Caller(service=service, client_ip=gateway.client_ip(request))

    return dependency


def check_cidr(caller: Caller) -> None:
    """403 unless the client IP is inside the service's authorized CIDRs (empty = any)."""
    cidrs = caller.service.authorized_cidrs
    if not cidrs:
        return
    if caller.client_ip is None:
        raise Problem(
            500, "Internal server error", "IP address cannot be extracted from the request"
        )
    try:
        ip = ipaddress.ip_address(caller.client_ip)
    except ValueError:
        raise forbidden() from None
    if not any(ip in network for network in cidrs):
        raise forbidden()


def can_write_to(caller: Caller, fiscal_code: str) -> None:
    """IO's canWriteMessage: a limited (sandbox) key reaches only authorized recipients."""
    service = caller.service
    if service.has("ApiLimitedMessageWrite"):
        if fiscal_code not in service.authorized_recipients:
            raise forbidden(
                "You are not allowed to issue requests for the recipient.",
                title="Recipient forbidden",
            )
        return
    if not service.has("ApiMessageWrite"):
        raise forbidden(
            "You are not allowed to issue production calls at this time.",
            title="Production call forbidden",
        )
