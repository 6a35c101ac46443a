"""Failed-credential throttling: too many wrong passwords or tokens from one client, or for
one username, and further attempts are refused for a while.

It guards the dev test login and the admin token. Both secrets are long and random, so the
throttle is defence in depth (it makes guessing loud and slow) rather than what keeps them
secret; a per-process count is therefore enough, and it costs nothing on the PA hot path.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from civio.core.problems import Problem


@dataclass
class FailureThrottle:
    """At most ``limit`` failures per key within ``window_seconds`` (sliding)."""

    limit: int = 10
    window_seconds: float = 300.0
    max_keys: int = 10_000
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def check(self, *keys: str, now: float | None = None) -> None:
        """Raise 429 if any of ``keys`` has used up its failures."""
        moment = time.monotonic() if now is None else now
        waits = [self._wait(key, moment) for key in keys]
        wait = max(waits, default=0.0)
        if wait > 0:
            seconds = str(max(1, math.ceil(wait)))
            raise Problem(
                429,
                "Too many requests",
                f"Too many failed attempts. Try again in {seconds} seconds.",
                headers={"Retry-After": seconds},
            )

    def failed(self, *keys: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        if len(self._failures) >= self.max_keys:
            self._evict(moment)
        for key in keys:
            self._failures.setdefault(key, deque(maxlen=self.limit)).append(moment)

    def _wait(self, key: str, now: float) -> float:
        failures = self._failures.get(key)
        if failures is None or len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window_seconds - now

    def _evict(self, now: float) -> None:
        stale = [k for k, v in self._failures.items() if v[-1] + self.window_seconds <= now]
        for key in stale:
            del self._failures[key]
        if len(self._failures) >= self.max_keys:
            self._failures.clear()
