"""Provisioning rules for services: used by the CLI and the admin API alike."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.callbacks import service as callbacks
from civio.callbacks.service import CallbackPolicy
from civio.core.crypto import KeyRing
from civio.core.ids import new_ulid
from civio.core.problems import Problem
from civio.services import sealed_keys
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


def _policy(policy: CallbackPolicy | None) -> CallbackPolicy:
    if policy is None:
        # A programming error, not a client one: every caller that accepts a callback URL
        # must say how to seal its secret and which URLs are allowed.
        raise RuntimeError("configuring a callback URL needs a CallbackPolicy")
    return policy


async def create_service(
    session: AsyncSession,
    data: ServiceCreate,
    *,
    sandbox_fiscal_code: str,
    callback_policy: CallbackPolicy | None = None,
    keyring: KeyRing | None = None,
) -> ServiceWithSubscriptionKeys:
    """A new service. With a key ring its keys also get readable copies, so that its owner
    can read them through the management API (``sealed_keys``); without one they exist only
    as digests and in this answer."""
    if data.callback_url is not None:
        await _policy(callback_policy).check(data.callback_url)
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
    callback_secret = None
    if data.callback_url is not None:
        callback_secret, sealed = _policy(callback_policy).new_secret(service.service_id)
        service.callback_url = data.callback_url
        service.callback_secret_ciphertext = sealed
    session.add(service)
    await session.flush()
    if keyring is not None:
        await sealed_keys.store(session, service.service_id, "primary", primary, keyring)
        await sealed_keys.store(session, service.service_id, "secondary", secondary, keyring)
    callbacks.forget(service.service_id)
    return to_io(
        service,
        owner.email,
        primary_key=primary,
        secondary_key=secondary,
        callback_secret=callback_secret,
    )


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
    session: AsyncSession,
    service_id: str,
    data: ServiceUpdate,
    *,
    sandbox_fiscal_code: str,
    callback_policy: CallbackPolicy | None = None,
) -> ServiceWithSubscriptionKeys:
    """Apply the given fields. ``callback_url`` set explicitly to None removes the callback
    (its undelivered events become FAILED); a different URL gets a new secret."""
    changes_callback = "callback_url" in data.model_fields_set
    if changes_callback and data.callback_url is not None:
        # Checked (its host resolved) before the row is locked.
        await _policy(callback_policy).check(data.callback_url)
    service, owner = await locked_service(session, service_id)
    # Cycle: the management rules build on this module's keys and recipients.
    from civio.services import manage_service

    was_visible = service.is_visible
    if data.visible and not was_visible:
        await manage_service.check_operator_visibility(session, service)
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
    callback_secret = None
    if changes_callback:
        callback_secret = await _change_callback(
            session, service, data.callback_url, _policy(callback_policy)
        )
    service.version += 1
    if service.is_visible != was_visible:
        manage_service.record_operator_publication(session, service)
    await session.flush()
    return to_io(service, owner.email, callback_secret=callback_secret)


async def _change_callback(
    session: AsyncSession, service: Service, url: str | None, policy: CallbackPolicy
) -> str | None:
    """Returns the new secret when one was generated (the URL is checked already)."""
    callbacks.forget(service.service_id)
    if url is None:
        if service.callback_url is not None:
            await callbacks.abandon_pending(
                session, service.service_id, "callback URL removed before delivery"
            )
        service.callback_url = None
        service.callback_secret_ciphertext = None
        return None
    if url == service.callback_url and service.callback_secret_ciphertext is not None:
        return None
    secret, sealed = policy.new_secret(service.service_id)
    service.callback_url = url
    service.callback_secret_ciphertext = sealed
    return secret


async def regenerate_callback_secret(
    session: AsyncSession, service_id: str, policy: CallbackPolicy
) -> ServiceWithSubscriptionKeys:
    """A new signing secret, effective at once (also for events not yet delivered)."""
    service, owner = await locked_service(session, service_id)
    if service.callback_url is None:
        raise Problem(
            409, "No callback URL", "The service has no callback URL: set one to get a secret."
        )
    secret, sealed = policy.new_secret(service.service_id)
    service.callback_secret_ciphertext = sealed
    await session.flush()
    return to_io(service, owner.email, callback_secret=secret)


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
    session: AsyncSession, service_id: str, which: KeyName, keyring: KeyRing | None = None
) -> ServiceWithSubscriptionKeys:
    """A new key; its readable copy is replaced (with a key ring) or dropped, never stale."""
    service, owner = await locked_service(session, service_id)
    key = new_subscription_key()
    if which == "primary":
        service.primary_key_hash = hash_key(key)
    else:
        service.secondary_key_hash = hash_key(key)
    await sealed_keys.store(session, service_id, which, key, keyring)
    await session.flush()
    return to_io(service, owner.email, **{f"{which}_key": key})


def to_io(
    service: Service,
    owner_email: str,
    *,
    primary_key: str | None = None,
    secondary_key: str | None = None,
    callback_secret: str | None = None,
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
        callback_url=service.callback_url,
        callback_secret=callback_secret,
    )
