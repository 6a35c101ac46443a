"""``/api/identity/v1``: the citizen's profile and per-service preferences."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/identity/v1", tags=["identity"])
