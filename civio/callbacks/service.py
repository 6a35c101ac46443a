"""Recording sender events (filled in by the callbacks work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def emit(
    session: AsyncSession,
    *,
    service_id: str,
    message_id: str,
    event: str,
    data: dict[str, Any],
) -> None:
    """Owe the sender an event, in the caller's transaction (no-op until callbacks land)."""
    return None
