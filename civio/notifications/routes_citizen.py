"""``/api/communication/v1/installations``: push devices (being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/communication/v1", tags=["communication"])
