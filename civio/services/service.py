"""Provisioning rules for services: used by the CLI and the admin API alike."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.ids import new_ulid
from civio.core.problems import Problem
from civio.services.groups import SANDBOX_GROUPS, UnknownGroupError, validate_groups
from civio.services.models import Owner, Service
from civio.services.schemas import (
    ServiceCreate,
    ServiceMetadata,
    ServiceUpdate,
    ServiceWithSubscriptionKeys,
)

KeyName = Literal["primary", "secondary"]


def new_subscription_key() -> str:
    """32 random bytes, hex: shown once, never stored."""
    return secrets.token_hex(32)


def hash_key(key: str) -> bytes:
    # Keys carry 256 bits of entropy, so a plain digest is enough (no need for a slow KDF).
    return hashlib.sha256(key.encode()).digest()


def _groups(groups: list[str]) -> list[str]:
    try:
        return validate_groups(groups)
    except UnknownGroupError as exc:
        raise Problem(400, "Invalid groups", str(exc)) from exc


def _recipients(sandbox_fiscal_code: str, recipients: list[str]) -> list[str]:
    # The platform sandbox fiscal code is always reachable, as in IO's CMS.
    return list(dict.fromkeys([sandbox_fiscal_code, *recipients]))


def _metadata(
    metadata: ServiceMetadata | None, special: bool | None, current: dict[str, Any] | None
) -> dict[str, Any]:
    merged: dict[str, Any] = dict(current or {"scope": "NATIONAL", "category": "STANDARD"})
    if metadata is not None:
        merged.update(metadata.model_dump(exclude_none=True, exclude_unset=True))
    if special is not None:
        merged["category"] = "SPECIAL" if special else "STANDARD"
    return merged


async def _owner(session: AsyncSession, email: str | None) -> Owner:
    if email is not None:
        existing = await session.scalar(select(Owner).where(Owner.email == email))
        if existing is not None:
            return existing
    owner_id = new_ulid()
    # Without an explicit owner the service gets one of its own (its own rate limit).
    owner = Owner(id=owner_id, email=email or f"owner-{owner_id.lower()}@localhost")
    session.add(owner)
    await session.flush()
    return owner


async def create_service(
    session: AsyncSession, data: ServiceCreate, *, sandbox_fiscal_code: str
) -> ServiceWithSubscriptionKeys:
    owner = await _owner(session, data.owner_email)
    primary, secondary = new_subscription_key(), new_subscription_key()
    metadata = _metadata(data.service_metadata, data.special, None)
    service = Service(
        service_id=new_ulid(),
        owner_id=owner.id,
        service_name=data.name,
        department_name=data.department_name,
        organization_name=data.organization_name,
        organization_fiscal_code=data.organization_fiscal_code,
        authorized_recipients=_recipients(sandbox_fiscal_code, data.authorized_recipients),
        authorized_cidrs=list(data.authorized_cidrs),
        max_allowed_payment_amount=data.max_allowed_payment_amount,
        require_secure_channels=data.require_secure_channels,
        is_visible=data.visible,
        category=metadata["category"],
        service_metadata=metadata,
        groups=_groups(list(SANDBOX_GROUPS) if data.groups is None else data.groups),
        version=0,
        primary_key_hash=hash_key(primary),
        secondary_key_hash=hash_key(secondary),
    )
    session.add(service)
    await session.flush()
    return to_io(service, owner.email, primary_key=primary, secondary_key=secondary)


async def get_service(session: AsyncSession, service_id: str) -> tuple[Service, Owner]:
    row = (
        await session.execute(
            select(Service, Owner)
            .join(Owner, Owner.id == Service.owner_id)
            .where(Service.service_id == service_id)
        )
    ).one_or_none()
    if row is None:
        raise Problem(404, "Service not found", f"No service with id {service_id}.")
    return row[0], row[1]


async def locked_service(session: AsyncSession, service_id: str) -> tuple[Service, Owner]:
    service = await session.scalar(
        select(Service).where(Service.service_id == service_id).with_for_update()
    )
    if service is None:
        raise Problem(404, "Service not found", f"No service with id {service_id}.")
    owner = await session.get_one(Owner, service.owner_id)
    return service, owner


async def update_service(
    session: AsyncSession, service_id: str, data: ServiceUpdate, *, sandbox_fiscal_code: str
) -> ServiceWithSubscriptionKeys:
    service, owner = await locked_service(session, service_id)
    if data.owner_email is not None and data.owner_email != owner.email:
        owner = await _owner(session, data.owner_email)
        service.owner_id = owner.id
    simple = {
        "name": "service_name",
        "organization_name": "organization_name",
        "organization_fiscal_code": "organization_fiscal_code",
        "department_name": "department_name",
        "max_allowed_payment_amount": "max_allowed_payment_amount",
        "require_secure_channels": "require_secure_channels",
        "visible": "is_visible",
    }
    for field, column in simple.items():
        value = getattr(data, field)
        if value is not None:
            setattr(service, column, value)
    if data.authorized_recipients is not None:
        service.authorized_recipients = _recipients(sandbox_fiscal_code, data.authorized_recipients)
    if data.authorized_cidrs is not None:
        service.authorized_cidrs = list(data.authorized_cidrs)
    if data.groups is not None:
        service.groups = _groups(data.groups)
    if data.service_metadata is not None or data.special is not None:
        service.service_metadata = _metadata(
            data.service_metadata, data.special, service.service_metadata
        )
        service.category = service.service_metadata["category"]
    service.version += 1
    await session.flush()
    return to_io(service, owner.email)


async def change_groups(
    session: AsyncSession, service_id: str, groups: list[str], *, grant: bool
) -> ServiceWithSubscriptionKeys:
    service, owner = await locked_service(session, service_id)
    wanted = _groups(groups)
    if grant:
        service.groups = list(dict.fromkeys([*service.groups, *wanted]))
    else:
        service.groups = [g for g in service.groups if g not in wanted]
    service.version += 1
    await session.flush()
    return to_io(service, owner.email)


async def regenerate_key(
    session: AsyncSession, service_id: str, which: KeyName
) -> ServiceWithSubscriptionKeys:
    service, owner = await locked_service(session, service_id)
    key = new_subscription_key()
    if which == "primary":
        service.primary_key_hash = hash_key(key)
    else:
        service.secondary_key_hash = hash_key(key)
    await session.flush()
    return to_io(service, owner.email, **{f"{which}_key": key})


def to_io(
    service: Service,
    owner_email: str,
    *,
    primary_key: str | None = None,
    secondary_key: str | None = None,
) -> ServiceWithSubscriptionKeys:
    return ServiceWithSubscriptionKeys(
        id=service.service_id,
        service_id=service.service_id,
        service_name=service.service_name,
        department_name=service.department_name,
        organization_name=service.organization_name,
        organization_fiscal_code=service.organization_fiscal_code,
        authorized_recipients=list(service.authorized_recipients),
        authorized_cidrs=list(service.authorized_cidrs),
        max_allowed_payment_amount=service.max_allowed_payment_amount,
        require_secure_channels=service.require_secure_channels,
        is_visible=service.is_visible,
        version=service.version,
        service_metadata=dict(service.service_metadata),
        groups=list(service.groups),
        owner_email=owner_email,
        primary_key=primary_key,
        secondary_key=secondary_key,
    )
