"""One rate limit per owner for the whole deployment, spent from leases taken in one statement.

IO's gateway allows an owner 150 calls per 5 s window (250 with ``ApiRateLimit250``). A
counter inside each process let ``civio serve --processes N``, or N replicas behind a
balancer, allow N times that. The count therefore lives where every process sees it: in
PostgreSQL (``rate_limit_windows``, one row per owner), or in Redis when
``CIVIO_REDIS_URL`` is set (one hash per owner).

**Leases, not a round trip per call.** Asking the store for every call would put a
statement on the accept path (~1,250 msg/s on two cores), so a process *leases* a block
of calls from the shared counter in one atomic statement and spends it locally; a call
that finds a spent lease waits for the next one, and the concurrent calls of one owner in
a process share a single lease request in flight.

**Exact.** The store keeps, per owner, the end of the current window and ``requested``:
the sum of every block asked for in it, granted or not. One atomic statement (``INSERT …
ON CONFLICT DO UPDATE … RETURNING``, or a Lua script in Redis) adds the block ``n`` and
returns the new sum ``r``; the caller was granted ``clamp(limit - (r - n), 0, n)``. The
store serialises these statements per owner, so the grants of a window never sum past the
limit, whatever the number of processes. The store's clock alone decides windows; a
process spends a grant only until ``t_sent + seconds_left`` by its own monotonic clock,
where ``t_sent`` is when it sent the statement, which is never later than the store's
window end. So no window of the deployment ever allows more than the limit.

**Cheap.** A block is sized by what the process needs and by what the window has left:

- need: the calls this process allowed the owner in the previous window (at least one,
  at least the calls waiting now), doubled each time a block runs out within the window;
- share: at most half of what the window still has when this process has been its only
  lessee so far, a quarter when others lease too, so blocks shrink as the window nears
  its limit and its last calls go one lease at a time.

A sender using its whole 150 on one process costs about 9 statements a window after the
first, spread over two processes about 16 each; one calling now and then costs one
statement per call, as cheap as it needs to be. When a lease comes back short the window is
exhausted: the process answers 429 by itself until the window ends, so a sender hammering
past its limit costs no statements at all.

**The price.** A block leased and not spent is lost for its window: a process holding one
while the owner's calls go elsewhere makes the others refuse sooner. The share rule bounds
that loss to a quarter (or half, alone) of what was left when the block was taken; when
every process keeps receiving the owner's calls, every block is spent and the deployment
allows exactly the limit.

**Windows** are fixed and start at the owner's first call, as civio's in-process counter
did: a call after the end starts the next. Redis keys expire at their window's end; the
PostgreSQL rows of ended windows are deleted by each process at most once a minute.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


class StoreUnavailable(Exception):
    """The shared counter could not be reached: no call is allowed without it."""


@dataclass(frozen=True)
class Count:
    """The store's answer to one lease request."""

    window: int  # which window of the owner (its end, in the store's clock)
    requested: int  # calls asked for in this window so far, this request included
    seconds_left: float  # until the window ends, by the store's clock


class WindowStore(Protocol):
    async def take(self, owner_id: str, calls: int, *, window_seconds: int) -> Count:
        """Add ``calls`` to the owner's current window (starting one if it has ended)."""
        ...


_TAKE = text(
    """
    INSERT INTO rate_limit_windows AS w (owner_id, window_end, requested)
    VALUES (:owner_id, now() + make_interval(secs => :seconds), :calls)
    ON CONFLICT (owner_id) DO UPDATE SET
        window_end = CASE WHEN w.window_end > now() THEN w.window_end
                          ELSE excluded.window_end END,
        requested = CASE WHEN w.window_end > now() THEN w.requested + excluded.requested
                         ELSE excluded.requested END
    RETURNING requested,
              (extract(epoch FROM window_end) * 1000000)::bigint AS window_id,
              extract(epoch FROM window_end - now())::float8 AS seconds_left
    """
)
_PRUNE = text("DELETE FROM rate_limit_windows WHERE window_end <= now()")


@dataclass
class PostgresWindows:
    """The counter in PostgreSQL: the deployment's database, nothing more to run."""

    engine: AsyncEngine
    prune_every_seconds: float = 60.0
    _next_prune: float = field(default=0.0, init=False)

    async def take(self, owner_id: str, calls: int, *, window_seconds: int) -> Count:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    _TAKE,
                    {"owner_id": owner_id, "seconds": float(window_seconds), "calls": calls},
                )
            ).one()
            await connection.commit()
        if time.monotonic() >= self._next_prune:
            await self.prune()
        return Count(window=row.window_id, requested=row.requested, seconds_left=row.seconds_left)

    async def prune(self) -> None:
        """Delete the rows of windows that have ended (they count nothing any more)."""
        self._next_prune = time.monotonic() + self.prune_every_seconds
        async with self.engine.begin() as connection:
            await connection.execute(_PRUNE)


# Milliseconds keep the numbers exact in Lua's doubles (and in its number formatting).
_TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window_end = tonumber(redis.call('HGET', KEYS[1], 'end'))
local requested
if window_end and window_end > now then
  requested = redis.call('HINCRBY', KEYS[1], 'requested', ARGV[1])
else
  window_end = now + tonumber(ARGV[2])
  requested = tonumber(ARGV[1])
  redis.call('HSET', KEYS[1], 'end', window_end, 'requested', requested)
  redis.call('PEXPIREAT', KEYS[1], window_end)
end
return {requested, window_end, window_end - now}
"""


@dataclass
class RedisWindows:
    """The counter in Redis (``CIVIO_REDIS_URL``): one hash per owner, expiring with its
    window, updated by one script so that reading and adding are a single step."""

    client: Redis
    prefix: str = "civio:rate-limit:"

    def __post_init__(self) -> None:
        self._script = self.client.register_script(_TAKE_LUA)

    async def take(self, owner_id: str, calls: int, *, window_seconds: int) -> Count:
        try:
            requested, window_end, left_ms = await self._script(
                keys=[self.prefix + owner_id], args=[calls, window_seconds * 1000]
            )
        except RedisError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return Count(window=int(window_end), requested=int(requested), seconds_left=left_ms / 1000)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int  # calls the owner has left in the window, as far as this process knows
    reset_seconds: float  # until the window ends


@dataclass
class _Window:
    """What this process knows of one owner's current window."""

    window: int
    expires: float  # monotonic; the grant may be spent only before this
    remaining: int = 0  # what the store had left after this process's last lease
    tokens: int = 0  # granted to this process and not spent yet
    leased: int = 0  # granted to this process in this window
    spent: int = 0  # calls this process allowed in this window
    last_block: int = 0
    alone: bool = False  # every call granted in this window so far went to this process
    exhausted: bool = False


@dataclass
class _Owner:
    current: _Window | None = None
    pending: asyncio.Task[None] | None = None
    waiting: int = 0
    need: int = 1  # the calls allowed in the previous window: the first block's size
    alone: bool = False


def granted(limit: int, asked: int, requested: int) -> int:
    """What a block of ``asked`` got, when the window's sum became ``requested`` with it."""
    return max(0, min(asked, limit - (requested - asked)))


@dataclass
class RateLimiter:
    """Fixed window per owner, IO's ``rate-limit-by-key``, shared through ``store``."""

    store: WindowStore
    window_seconds: int
    _owners: dict[str, _Owner] = field(default_factory=dict)

    async def hit(self, owner_id: str, limit: int) -> Verdict:
        """Count one call of ``owner_id`` against ``limit``."""
        owner = self._owners.get(owner_id)
        if owner is None:
            owner = self._owners[owner_id] = _Owner()
            if len(self._owners) > 100_000:
                self._evict()
        while True:
            now = time.monotonic()
            window = owner.current
            if window is not None and now < window.expires:
                if window.tokens > 0:
                    window.tokens -= 1
                    window.spent += 1
                    remaining = window.remaining + window.tokens
                    return Verdict(True, remaining, window.expires - now)
                if window.exhausted:
                    return Verdict(False, 0, window.expires - now)
            if owner.pending is None:
                owner.pending = asyncio.create_task(self._lease(owner, owner_id, limit))
                owner.pending.add_done_callback(_retrieve)
            owner.waiting += 1
            try:
                # Shielded: a caller that goes away does not lose a lease already counted.
                await asyncio.shield(owner.pending)
            finally:
                owner.waiting -= 1

    async def _lease(self, owner: _Owner, owner_id: str, limit: int) -> None:
        try:
            asked = self._block_size(owner, limit)
            sent = time.monotonic()
            count = await self.store.take(owner_id, asked, window_seconds=self.window_seconds)
            self._record(owner, count, asked, limit, sent + count.seconds_left)
        finally:
            owner.pending = None

    def _block_size(self, owner: _Owner, limit: int) -> int:
        window = owner.current
        if window is None or time.monotonic() >= window.expires:
            left, alone, need = limit, owner.alone, owner.need
        else:
            left, alone, need = window.remaining, window.alone, 2 * window.last_block
        share = max(1, math.ceil(left / (2 if alone else 4)))
        return min(max(need, owner.waiting, 1), share)

    def _record(self, owner: _Owner, count: Count, asked: int, limit: int, expires: float) -> None:
        window = owner.current
        if window is None or count.window > window.window:
            if window is not None:
                # Recent demand sizes the next window's first block; an old one does not.
                recent = expires - window.expires < 2 * self.window_seconds
                owner.need = max(1, window.spent) if recent else 1
                owner.alone = window.alone
            window = owner.current = _Window(window=count.window, expires=expires)
        elif count.window < window.window:
            return  # an answer about a window already over: nothing to spend
        grant = granted(limit, asked, count.requested)
        window.expires = max(window.expires, expires)  # both never later than the real end
        window.tokens += grant
        window.leased += grant
        window.last_block = asked
        window.remaining = max(0, limit - count.requested)
        window.exhausted = window.remaining == 0
        window.alone = window.leased == count.requested

    def _evict(self) -> None:
        now = time.monotonic()
        stale = [
            key
            for key, owner in self._owners.items()
            if owner.pending is None and (owner.current is None or owner.current.expires <= now)
        ]
        for key in stale:
            del self._owners[key]


def _retrieve(task: asyncio.Task[None]) -> None:
    """Every caller waiting on a lease gets its error; none waiting must not warn."""
    if not task.cancelled():
        task.exception()
