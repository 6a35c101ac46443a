"""Identifiers: ULIDs as IO uses them for messages and services."""

from __future__ import annotations

from ulid import ULID


def new_ulid() -> str:
    return str(ULID())
