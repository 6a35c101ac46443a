"""PA API: limited profile, activations (SPECIAL services) and the subscriptions feed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.dialects.postgresql import insert

from civio.core.problems import Problem, forbidden, problem_responses
from civio.core.runtime import get_runtime
from civio.core.types import FISCAL_CODE_PATTERN
from civio.profiles.models import Activation as ActivationRow
from civio.profiles.schemas import (
    Activation,
    ActivationPayload,
    FiscalCodePayload,
    LimitedProfile,
    SubscriptionsFeed,
)
from civio.profiles.service import reachability, subscriptions_feed
from civio.services.gateway import Caller, can_write_to, check_cidr, require_groups

router = APIRouter(tags=["profiles"])

PROFILE_READ = require_groups("ApiLimitedProfileRead")
FEED_READ = require_groups("ApiSubscriptionsFeedRead")
ACTIVATIONS = require_groups("ApiMessageWrite")
FC_TITLES: dict[str, Any] = {
    "x-civio-param-titles": {"fiscal_code": "Invalid FiscalCode"},
    "x-civio-body-title": "Invalid FiscalCodePayload",
}


async def _limited_profile(request: Request, caller: Caller, fiscal_code: str) -> LimitedProfile:
    check_cidr(caller)
    can_write_to(caller, fiscal_code)
    runtime = get_runtime(request)
    async with runtime.sessions() as session:
        profile, reach = await reachability(
            session,
            fiscal_code,
            caller.service.service_id,
            special=caller.service.category == "SPECIAL",
            grace_seconds=runtime.settings.pending_activation_grace_seconds,
        )
    if profile is None or not reach.inbox_enabled:
        raise Problem(
            404, "Profile not found", "The profile you requested was not found in the system."
        )
    return LimitedProfile(
        sender_allowed=reach.sender_allowed,
        preferred_languages=list(profile.preferred_languages) or None,
    )


@router.get(
    "/profiles/{fiscal_code}",
    operation_id="getProfile",
    response_model=LimitedProfile,
    response_model_exclude_none=True,
    responses=problem_responses(400, 401, 403, 404, 429),
    openapi_extra=FC_TITLES,
)
async def get_profile(
    request: Request,
    fiscal_code: Annotated[str, Path(pattern=FISCAL_CODE_PATTERN, min_length=16, max_length=16)],
    caller: Annotated[Caller, Depends(PROFILE_READ)],
) -> LimitedProfile:
    """Whether the citizen is reachable, and whether this service may write to them."""
    return await _limited_profile(request, caller, fiscal_code)


@router.post(
    "/profiles",
    operation_id="getProfileByPOST",
    response_model=LimitedProfile,
    response_model_exclude_none=True,
    responses=problem_responses(400, 401, 403, 404, 429),
    openapi_extra=FC_TITLES,
)
async def get_profile_by_post(
    request: Request,
    payload: FiscalCodePayload,
    caller: Annotated[Caller, Depends(PROFILE_READ)],
) -> LimitedProfile:
    """The same as ``GET /profiles/{fiscal_code}``, keeping the fiscal code out of URLs."""
    return await _limited_profile(request, caller, payload.fiscal_code)


def _require_special(caller: Caller) -> None:
    if caller.service.category != "SPECIAL":
        raise forbidden()


def _activation(row: ActivationRow) -> Activation:
    return Activation(
        service_id=row.service_id,
        fiscal_code=row.fiscal_code,
        status=row.status,
        version=row.version,
    )


@router.post(
    "/activations/",
    operation_id="getServiceActivationByPOST",
    response_model=Activation,
    responses=problem_responses(400, 401, 403, 404, 429),
    openapi_extra=FC_TITLES,
)
async def get_activation(
    request: Request,
    payload: FiscalCodePayload,
    caller: Annotated[Caller, Depends(ACTIVATIONS)],
) -> Activation:
    """The citizen's activation of this SPECIAL service."""
    _require_special(caller)
    check_cidr(caller)
    async with get_runtime(request).sessions() as session:
        row = await session.get(ActivationRow, (payload.fiscal_code, caller.service.service_id))
    if row is None:
        raise Problem(404, "Not Found", "Activation not found for the user")
    return _activation(row)


@router.put(
    "/activations/",
    operation_id="upsertServiceActivation",
    response_model=Activation,
    responses=problem_responses(400, 401, 403, 429),
    openapi_extra={"x-civio-body-title": "Invalid ActivationPayload"},
)
async def upsert_activation(
    request: Request,
    payload: ActivationPayload,
    caller: Annotated[Caller, Depends(ACTIVATIONS)],
) -> Activation:
    """Create or change the activation; every write is a new version."""
    _require_special(caller)
    check_cidr(caller)
    async with get_runtime(request).sessions() as session, session.begin():
        row = (
            await session.execute(
                insert(ActivationRow)
                .values(
                    fiscal_code=payload.fiscal_code,
                    service_id=caller.service.service_id,
                    status=payload.status,
                    version=0,
                    updated_at=datetime.now(UTC),
                )
                .on_conflict_do_update(
                    index_elements=["fiscal_code", "service_id"],
                    set_={
                        "status": payload.status,
                        "version": ActivationRow.version + 1,
                        "updated_at": datetime.now(UTC),
                    },
                )
                .returning(ActivationRow)
            )
        ).scalar_one()
        return _activation(row)


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Problem(400, "Invalid DateUTC", f"value {value!r} is not a valid date") from None


@router.get(
    "/subscriptions-feed/{date}",
    operation_id="getSubscriptionsFeedForDate",
    response_model=SubscriptionsFeed,
    responses=problem_responses(400, 401, 403, 404, 429),
    openapi_extra={"x-civio-param-titles": {"date": "Invalid DateUTC"}},
)
async def get_subscriptions_feed(
    request: Request,
    date: Annotated[str, Path(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")],
    caller: Annotated[Caller, Depends(FEED_READ)],
) -> SubscriptionsFeed:
    """Who subscribed to or left this service on a UTC day (sha256 of fiscal codes)."""
    day = _parse_day(date)
    check_cidr(caller)
    # Compared as dates: the day after 9999-12-31 does not exist.
    if datetime.now(UTC).date() <= day:
        raise Problem(404, "Data not available yet", f"The feed for {date} is not complete yet.")
    runtime = get_runtime(request)
    async with runtime.sessions() as session:
        feed = await subscriptions_feed(session, runtime.keyring, caller.service.service_id, day)
    return SubscriptionsFeed(
        dateUTC=date, subscriptions=feed.subscriptions, unsubscriptions=feed.unsubscriptions
    )
