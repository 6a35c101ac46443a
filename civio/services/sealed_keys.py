"""Readable copies of service keys, for IO's ``GET /manage/services/{id}/keys``.

The gateway finds a key by its SHA-256 digest on ``services`` and never needs the key
itself. IO's management API, though, shows a service's current keys to its owner at any
time, so civio keeps a second copy of each key sealed with AES-256-GCM under a key derived
from the master key, bound (AAD) to its service and key type: a copy moved to another row
or type does not open. A key generated where no key ring is at hand has no copy (only its
digest): its copy is dropped, never left stale, and the owner sees 409 until it is
regenerated through the management API.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.crypto import CryptoError, KeyRing
from civio.core.problems import Problem
from civio.services.manage_models import SealedServiceKeys
from civio.services.manage_schemas import CmsSubscriptionKeys

KeyName = Literal["primary", "secondary"]


def _aad(service_id: str, which: KeyName) -> str:
    return f"{service_id}/{which}-key"


def _open(keyring: KeyRing, service_id: str, which: KeyName, sealed: bytes | None) -> str | None:
    if sealed is None:
        return None
    try:
        return keyring.open_service_secret(_aad(service_id, which), sealed).decode()
    except CryptoError:
        return None


def unretrievable(service_id: str) -> Problem:
    return Problem(
        409,
        "Keys not retrievable",
        f"Service {service_id} has a key that civio keeps only as a digest (it was shown "
        "once, when it was generated): regenerate it here to read it.",
    )


async def store(
    session: AsyncSession,
    service_id: str,
    which: KeyName,
    key: str,
    keyring: KeyRing | None,
) -> None:
    """Record the readable copy of a key just generated; without a key ring, forget the old
    copy (it no longer matches)."""
    row = await session.get(SealedServiceKeys, service_id, with_for_update=True)
    if row is None:
        if keyring is None:
            return
        row = SealedServiceKeys(service_id=service_id)
        session.add(row)
    sealed = keyring.seal_service_secret(_aad(service_id, which), key.encode()) if keyring else None
    setattr(row, f"{which}_sealed", sealed)
    await session.flush()


async def read(session: AsyncSession, service_id: str, keyring: KeyRing) -> dict[KeyName, str]:
    """The keys that have a readable copy, by type."""
    row = await session.get(SealedServiceKeys, service_id)
    found: dict[KeyName, str] = {}
    if row is None:
        return found
    for which, sealed in (("primary", row.primary_sealed), ("secondary", row.secondary_sealed)):
        name: KeyName = "primary" if which == "primary" else "secondary"
        key = _open(keyring, service_id, name, sealed)
        if key is not None:
            found[name] = key
    return found


async def pair(session: AsyncSession, service_id: str, keyring: KeyRing) -> CmsSubscriptionKeys:
    found = await read(session, service_id, keyring)
    if "primary" not in found or "secondary" not in found:
        raise unretrievable(service_id)
    return CmsSubscriptionKeys(primary_key=found["primary"], secondary_key=found["secondary"])
