"""Retry delays: exponential, capped, with "equal jitter" so retries of many jobs that
failed together do not come back together."""

from __future__ import annotations

import random


def exponential_backoff(base: float, attempt: int, cap: float) -> float:
    """``base * 2^(attempt-1)`` capped at ``cap``, then a random half to all of it."""
    delay: float = min(base * 2 ** max(attempt - 1, 0), cap)
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security
