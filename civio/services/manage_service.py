"""The management API's rules (IO's CMS): a body's services from draft to published.

Two copies of a managed service exist, as in IO:

* the **working copy** (``service_lifecycles.data``, IO's ``CmsServiceData``) is what the
  owner creates and edits and what an operator reviews;
* the **live row** (``services``) is what the gateway, the pipeline and the catalogue read.
  An approval copies the working copy onto it (IO's *release*), forcing
  ``max_allowed_payment_amount`` to ``CIVIO_MAX_ALLOWED_PAYMENT_AMOUNT``; ``is_visible`` is
  its publication state (published ⇔ visible, so the catalogue shows published services
  only, and drops one the moment it is unpublished or deleted).

Editing a service that was released already does not touch the live row: the released
version stays live (and published, if it was) until the new version is approved, as IO
keeps its publication copy until the next release. Until a service is released for the
first time nothing of it is public, so the live row follows every edit of the working copy:
its keys work from creation (sandbox sending, as a new IO service), under the current name.

Messages keep flowing whatever the lifecycle or publication state (IO does not gate sending
on either): the keys stay valid even after deletion, which only unpublishes the service and
hides it from this API (404).

A service created by the operator tools (``civio service create``, ``/admin/v1``) has no
lifecycle row: it reads as ``approved`` and released, published when visible, with its
working copy derived from the live row; the first manage action on it writes the row.

Ownership follows IO's ``serviceOwnerCheckManageTask``: an unknown service is 404, a service
of another owner 403 ``You are not allowed here`` (the same answer a service key gets on
this surface, ``routes_manage``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.crypto import KeyRing
from civio.core.ids import new_ulid
from civio.core.problems import Problem, forbidden
from civio.core.runtime import Runtime
from civio.core.types import format_timestamp
from civio.services import history as service_history
from civio.services import lifecycle, logos, sealed_keys, topics
from civio.services.copies import (
    apply_to_live,
    data_out,
    derived_copy,
    publication_of,
    working_copy,
)
from civio.services.groups import SANDBOX_GROUPS
from civio.services.lifecycle import Action, LifecycleStatus, PublicationStatus
from civio.services.manage_models import ServiceLifecycle, ServiceLogo
from civio.services.manage_schemas import (
    CmsPaginationResultSet,
    CmsServiceHistory,
    CmsServiceLifecycle,
    CmsServicePagination,
    CmsServicePayload,
    CmsServicePublication,
    CmsSubscriptionKeys,
)
from civio.services.models import Service
from civio.services.service import KeyName, hash_key, new_subscription_key

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Platform:
    """What the rules need from the settings and the key ring."""

    sandbox_fiscal_code: str
    max_allowed_payment_amount: int
    keyring: KeyRing

    @classmethod
    def of(cls, runtime: Runtime) -> Platform:
        settings = runtime.settings
        return cls(
            sandbox_fiscal_code=settings.sandbox_fiscal_code,
            max_allowed_payment_amount=settings.max_allowed_payment_amount,
            keyring=runtime.keyring,
        )


def now() -> datetime:
    return datetime.now(UTC)


def not_found(service_id: str) -> Problem:
    return Problem(404, "Not found", f"No service with id {service_id}.")


# --- loading, with IO's ownership rule ----------------------------------------------------


@dataclass
class Managed:
    service: Service
    state: ServiceLifecycle  # transient (not added) for a service of the operator tools
    persisted: bool

    @property
    def status(self) -> LifecycleStatus:
        return cast(LifecycleStatus, self.state.status)


def _virtual(service: Service) -> ServiceLifecycle:
    """The lifecycle a service of the operator tools reads as (not added to the session)."""
    return ServiceLifecycle(
        service_id=service.service_id,
        status="approved",
        reason=None,
        auto_publish=False,
        data=derived_copy(service),
        released=True,
        updated_at=service.updated_at,
    )


async def _load(session: AsyncSession, owner_id: str, service_id: str, *, lock: bool) -> Managed:
    if "\x00" in service_id:
        raise not_found(service_id)
    query = select(Service).where(Service.service_id == service_id)
    service = await session.scalar(query.with_for_update() if lock else query)
    if service is None:
        raise not_found(service_id)
    if service.owner_id != owner_id:
        raise forbidden()
    state = await session.get(ServiceLifecycle, service_id, with_for_update=lock)
    if state is None:
        return Managed(
            service,
            _virtual(service),
            persisted=False,
        )
    if state.status == "deleted":
        raise not_found(service_id)
    return Managed(service, state, persisted=True)


def _record(
    session: AsyncSession,
    managed: Managed,
    kind: service_history.Kind,
    value: str,
    at: datetime,
    *,
    reason: str | None = None,
) -> None:
    data = managed.state.data if kind == "lifecycle" else derived_copy(managed.service)
    service_history.record(
        session, managed.service.service_id, kind, value, data, at, reason=reason
    )


def _transition(
    session: AsyncSession, managed: Managed, action: Action, *, reason: str | None = None
) -> datetime:
    """Move the lifecycle (409 when not allowed) and record it."""
    at = now()
    managed.state.status = lifecycle.next_status(managed.status, action)
    managed.state.reason = reason
    managed.state.updated_at = at
    if not managed.persisted:
        session.add(managed.state)
        managed.persisted = True
    _record(session, managed, "lifecycle", managed.state.status, at, reason=reason)
    return at


def _set_publication(
    session: AsyncSession, managed: Managed, target: PublicationStatus, at: datetime
) -> None:
    changed = publication_of(managed.service) != target
    managed.service.is_visible = target == "published"
    if changed:
        managed.service.updated_at = at
    _record(session, managed, "publication", target, at)


def lifecycle_out(managed: Managed) -> CmsServiceLifecycle:
    return CmsServiceLifecycle.model_validate(
        {
            "id": managed.service.service_id,
            "status": {"value": managed.state.status, "reason": managed.state.reason},
            "last_update": format_timestamp(managed.state.updated_at),
            **data_out(managed.state.data),
        }
    )


# --- the owner's operations ----------------------------------------------------------------


def _check_topic(payload: CmsServicePayload) -> None:
    if payload.metadata.topic_id not in topics.TOPICS:
        raise Problem(
            400,
            "Invalid CmsServicePayload",
            f"metadata.topic_id {payload.metadata.topic_id} is not a known topic "
            "(GET /api/v1/manage/topics).",
        )


async def create(
    session: AsyncSession, owner_id: str, payload: CmsServicePayload, platform: Platform
) -> CmsServiceLifecycle:
    """A new service in ``draft``, with its two keys (kept sealed for ``GET …/keys``)."""
    _check_topic(payload)
    data = working_copy(payload, platform.sandbox_fiscal_code)
    primary, secondary = new_subscription_key(), new_subscription_key()
    service_id = new_ulid()
    service = Service(
        service_id=service_id,
        owner_id=owner_id,
        service_name=data["name"],
        department_name="-",
        organization_name=data["organization"]["name"],
        organization_fiscal_code=data["organization"]["fiscal_code"],
        authorized_recipients=[],
        authorized_cidrs=[],
        max_allowed_payment_amount=0,
        require_secure_channels=False,
        is_visible=False,
        category="STANDARD",
        service_metadata={},
        groups=list(SANDBOX_GROUPS),
        version=-1,  # apply_to_live makes it 0, as a new operator service
        primary_key_hash=hash_key(primary),
        secondary_key_hash=hash_key(secondary),
    )
    apply_to_live(service, data)
    session.add(service)
    await session.flush()
    await sealed_keys.store(session, service_id, "primary", primary, platform.keyring)
    await sealed_keys.store(session, service_id, "secondary", secondary, platform.keyring)
    at = now()
    state = ServiceLifecycle(
        service_id=service_id,
        status="draft",
        reason=None,
        auto_publish=False,
        data=data,
        released=False,
        updated_at=at,
    )
    session.add(state)
    managed = Managed(service, state, persisted=True)
    _record(session, managed, "lifecycle", "draft", at)
    await session.flush()
    return lifecycle_out(managed)


async def list_services(
    session: AsyncSession, owner_id: str, *, limit: int, offset: int
) -> CmsServicePagination:
    """The owner's services that are not deleted, oldest first (ids are ULIDs)."""
    visible = (Service.owner_id == owner_id) & or_(
        ServiceLifecycle.status.is_(None), ServiceLifecycle.status != "deleted"
    )
    joined = select(Service, ServiceLifecycle).outerjoin(
        ServiceLifecycle, ServiceLifecycle.service_id == Service.service_id
    )
    rows = (
        await session.execute(
            joined.where(visible).order_by(Service.service_id).limit(limit).offset(offset)
        )
    ).all()
    count = await session.scalar(
        select(func.count())
        .select_from(Service)
        .outerjoin(ServiceLifecycle, ServiceLifecycle.service_id == Service.service_id)
        .where(visible)
    )
    value = []
    for service, state in rows:
        stored: ServiceLifecycle | None = state
        shown = stored if stored is not None else _virtual(service)
        value.append(lifecycle_out(Managed(service, shown, persisted=stored is not None)))
    return CmsServicePagination(
        value=value,
        pagination=CmsPaginationResultSet(offset=offset, limit=limit, count=int(count or 0)),
    )


async def get(session: AsyncSession, owner_id: str, service_id: str) -> CmsServiceLifecycle:
    return lifecycle_out(await _load(session, owner_id, service_id, lock=False))


async def update(
    session: AsyncSession,
    owner_id: str,
    service_id: str,
    payload: CmsServicePayload,
    platform: Platform,
) -> CmsServiceLifecycle:
    """A new working copy, back to ``draft``; the live row changes only while the service
    was never released (see the module docstring)."""
    managed = await _load(session, owner_id, service_id, lock=True)
    _check_topic(payload)
    lifecycle.next_status(managed.status, "edit")  # 409 before anything changes
    managed.state.data = working_copy(payload, platform.sandbox_fiscal_code)
    _transition(session, managed, "edit")
    if not managed.state.released:
        apply_to_live(managed.service, managed.state.data)
    await session.flush()
    return lifecycle_out(managed)


async def delete(session: AsyncSession, owner_id: str, service_id: str) -> None:
    """``deleted`` (from draft, rejected or approved); a published service is unpublished."""
    managed = await _load(session, owner_id, service_id, lock=True)
    at = _transition(session, managed, "delete")
    if managed.service.is_visible:
        _set_publication(session, managed, "unpublished", at)
    await session.flush()


async def submit(
    session: AsyncSession, owner_id: str, service_id: str, *, auto_publish: bool
) -> None:
    """``draft`` → ``submitted``: it waits for an operator (``decide``)."""
    managed = await _load(session, owner_id, service_id, lock=True)
    _transition(session, managed, "submit")
    managed.state.auto_publish = auto_publish
    await session.flush()


async def publish(session: AsyncSession, owner_id: str, service_id: str) -> None:
    await _change_publication(session, owner_id, service_id, lifecycle.publish)


async def unpublish(session: AsyncSession, owner_id: str, service_id: str) -> None:
    await _change_publication(session, owner_id, service_id, lifecycle.unpublish)


async def _change_publication(
    session: AsyncSession,
    owner_id: str,
    service_id: str,
    move: Callable[[PublicationStatus], PublicationStatus],
) -> None:
    """Publish or unpublish the released version (404 if no version was ever approved)."""
    managed = await _load(session, owner_id, service_id, lock=True)
    if not managed.state.released:
        raise Problem(404, "Not found", f"Service {service_id} has never been approved.")
    _set_publication(session, managed, move(publication_of(managed.service)), now())
    await session.flush()


async def publication(
    session: AsyncSession, owner_id: str, service_id: str
) -> CmsServicePublication:
    """The released version, as live now."""
    managed = await _load(session, owner_id, service_id, lock=False)
    if not managed.state.released:
        raise Problem(404, "Not found", f"Service {service_id} has never been approved.")
    service = managed.service
    return CmsServicePublication.model_validate(
        {
            "id": service.service_id,
            "status": publication_of(service),
            "last_update": format_timestamp(service.updated_at),
            **data_out(derived_copy(service)),
        }
    )


# --- history, keys and logo -----------------------------------------------------------------


async def history(
    session: AsyncSession,
    owner_id: str,
    service_id: str,
    *,
    order: Literal["ASC", "DESC"],
    limit: int,
    continuation_token: str | None,
) -> CmsServiceHistory:
    """Every lifecycle and publication change, newest first by default."""
    await _load(session, owner_id, service_id, lock=False)
    return await service_history.page(
        session, service_id, order=order, limit=limit, continuation_token=continuation_token
    )


async def keys(
    session: AsyncSession, owner_id: str, service_id: str, keyring: KeyRing
) -> CmsSubscriptionKeys:
    await _load(session, owner_id, service_id, lock=False)
    return await sealed_keys.pair(session, service_id, keyring)


async def regenerate_key(
    session: AsyncSession, owner_id: str, service_id: str, which: KeyName, keyring: KeyRing
) -> CmsSubscriptionKeys:
    """A new key of that type; the other keeps working and is shown too, as IO does.

    A key generated by the operator tools may have no readable copy (``sealed_keys``). IO's
    answer needs both keys, so there the other key is replaced as well: the owner asked for
    a usable pair through this API, and afterwards both are readable here.
    """
    managed = await _load(session, owner_id, service_id, lock=True)
    other: KeyName = "secondary" if which == "primary" else "primary"
    readable = await sealed_keys.read(session, service_id, keyring)
    fresh = {which: new_subscription_key()}
    if other not in readable:
        fresh[other] = new_subscription_key()
    for name, key in fresh.items():
        setattr(managed.service, f"{name}_key_hash", hash_key(key))
        await sealed_keys.store(session, service_id, name, key, keyring)
    pair = readable | fresh
    return CmsSubscriptionKeys(primary_key=pair["primary"], secondary_key=pair["secondary"])


async def set_logo(session: AsyncSession, owner_id: str, service_id: str, encoded: str) -> None:
    await _load(session, owner_id, service_id, lock=False)
    png = logos.resized_png(encoded)
    await session.execute(
        insert(ServiceLogo)
        .values(service_id=service_id, png=png)
        .on_conflict_do_update(
            index_elements=["service_id"], set_={"png": png, "updated_at": now()}
        )
    )


# --- the operator's review -------------------------------------------------------------------


async def check_operator_visibility(session: AsyncSession, service: Service) -> None:
    """Before the operator tools make a service visible: a managed service shows only a
    version an operator approved (409 while none is, or once it is deleted)."""
    state = await session.get(ServiceLifecycle, service.service_id)
    if state is not None and (not state.released or state.status == "deleted"):
        raise lifecycle.conflict(
            f"Service {service.service_id} has no approved version to publish "
            f"(lifecycle status '{state.status}')."
        )


def record_operator_publication(session: AsyncSession, service: Service) -> None:
    """After the operator tools changed a service's visibility: its history says so."""
    service_history.record(
        session,
        service.service_id,
        "publication",
        publication_of(service),
        derived_copy(service),
        now(),
    )


async def decide(
    session: AsyncSession,
    service_id: str,
    verdict: Literal["approve", "reject"],
    platform: Platform,
    *,
    reason: str | None = None,
) -> CmsServiceLifecycle:
    """An operator approves or rejects a ``submitted`` service (409 otherwise).

    Approval forces ``max_allowed_payment_amount`` to the platform's maximum and releases
    the working copy to the live row: unpublished the first time unless ``auto_publish``
    was asked for, otherwise keeping its publication state (``lifecycle.released_status``).
    A rejection keeps its reason, shown in ``status.reason`` and in the history.
    """
    if "\x00" in service_id:
        raise not_found(service_id)
    service = await session.scalar(
        select(Service).where(Service.service_id == service_id).with_for_update()
    )
    if service is None:
        raise not_found(service_id)
    managed = await _load(session, service.owner_id, service_id, lock=True)
    if verdict == "reject":
        _transition(session, managed, "reject", reason=reason)
        await session.flush()
        log.info("services.review.rejected", service_id=service_id)
        return lifecycle_out(managed)
    lifecycle.next_status(managed.status, "approve")
    data = copy.deepcopy(managed.state.data)
    data["max_allowed_payment_amount"] = platform.max_allowed_payment_amount
    managed.state.data = data
    at = _transition(session, managed, "approve", reason=reason)
    before = publication_of(managed.service) if managed.state.released else None
    apply_to_live(managed.service, data)
    managed.state.released = True
    target = lifecycle.released_status(before, auto_publish=managed.state.auto_publish)
    _set_publication(session, managed, target, at)
    managed.service.updated_at = at
    await session.flush()
    log.info("services.review.approved", service_id=service_id, publication=target)
    return lifecycle_out(managed)
