"""Owners (a sender organisation's account) and their manage keys.

A manage key is the owner's credential for the management API: it acts on every service of
that owner and on no other. Like service keys it is 32 random bytes shown once and stored
only as a SHA-256 digest. A service key is not a manage key and a manage key is not a
service key: each is looked up in its own table, so neither opens the other's surface.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.ids import new_ulid
from civio.core.problems import Problem
from civio.services.manage_models import OwnerManageKey
from civio.services.manage_schemas import OwnerWithManageKeys
from civio.services.models import Owner, Service
from civio.services.service import hash_key, new_subscription_key

KeyName = Literal["primary", "secondary"]


async def create_owner(session: AsyncSession, email: str) -> OwnerWithManageKeys:
    """A new owner with its manage keys; an existing owner of that email (one the operator
    tools created with a service) gets its first manage keys. One that has them already is
    409: its keys are replaced only by ``regenerate_key``, on purpose."""
    # Two concurrent creates for one address make one owner, not two.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"civio.owner:{email}"}
    )
    owner = await session.scalar(select(Owner).where(Owner.email == email).with_for_update())
    if owner is None:
        owner = Owner(id=new_ulid(), email=email)
        session.add(owner)
        await session.flush()
    elif await session.get(OwnerManageKey, owner.id) is not None:
        raise Problem(
            409,
            "Owner already exists",
            f"Owner {owner.id} has manage keys already; regenerate one to get a new key.",
        )
    primary, secondary = new_subscription_key(), new_subscription_key()
    session.add(
        OwnerManageKey(
            owner_id=owner.id,
            primary_key_hash=hash_key(primary),
            secondary_key_hash=hash_key(secondary),
        )
    )
    await session.flush()
    return OwnerWithManageKeys(
        id=owner.id, email=owner.email, primary_key=primary, secondary_key=secondary
    )


async def regenerate_key(
    session: AsyncSession, owner_id: str, which: KeyName
) -> OwnerWithManageKeys:
    """Replace one manage key; the other keeps working. The new key is shown only now."""
    owner = await session.get(Owner, owner_id)
    keys = await session.get(OwnerManageKey, owner_id, with_for_update=True)
    if owner is None or keys is None:
        raise Problem(404, "Owner not found", f"No owner with manage keys has id {owner_id}.")
    key = new_subscription_key()
    if which == "primary":
        keys.primary_key_hash = hash_key(key)
    else:
        keys.secondary_key_hash = hash_key(key)
    await session.flush()
    return OwnerWithManageKeys(id=owner.id, email=owner.email, **{f"{which}_key": key})


async def owner_of_manage_key(session: AsyncSession, key: str) -> str | None:
    digest = hash_key(key)
    return await session.scalar(
        select(OwnerManageKey.owner_id).where(
            or_(
                OwnerManageKey.primary_key_hash == digest,
                OwnerManageKey.secondary_key_hash == digest,
            )
        )
    )


async def is_service_key(session: AsyncSession, key: str) -> bool:
    digest = hash_key(key)
    found = await session.scalar(
        select(Service.service_id).where(
            or_(Service.primary_key_hash == digest, Service.secondary_key_hash == digest)
        )
    )
    return found is not None
