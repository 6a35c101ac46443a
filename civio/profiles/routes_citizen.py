"""``/api/identity/v1``: the citizen's profile and per-service preferences."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from civio.auth.dependencies import UNAUTHORIZED, Citizen
from civio.core.problems import problem_responses
from civio.core.runtime import get_runtime
from civio.profiles import citizen_profile
from civio.profiles.email_hooks import email_changed_hook
from civio.profiles.schemas import (
    InitializedProfile,
    ProfileUpdate,
    ServicePreferenceOut,
    UpsertServicePreference,
)

router = APIRouter(prefix="/api/identity/v1", tags=["identity"])
ServiceId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get(
    "/profile",
    operation_id="getUserProfile",
    response_model=InitializedProfile,
    response_model_exclude_none=True,
    responses={**problem_responses(404), **UNAUTHORIZED},
)
async def get_profile(request: Request, citizen: Citizen) -> InitializedProfile:
    """The citizen's profile, with the names asserted by the identity provider."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session:
        profile = await citizen_profile.load_profile(session, citizen.fiscal_code)
        return await citizen_profile.initialized_profile(session, runtime.keyring, citizen, profile)


@router.post(
    "/profile",
    operation_id="updateProfile",
    response_model=InitializedProfile,
    response_model_exclude_none=True,
    responses={**problem_responses(400, 404, 409, 412), **UNAUTHORIZED},
    openapi_extra={"x-civio-body-title": "Invalid Profile"},
)
async def update_profile(
    request: Request, citizen: Citizen, body: ProfileUpdate
) -> InitializedProfile:
    """Change the profile; ``version`` must be the current one (optimistic concurrency)."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session, session.begin():
        outcome = await citizen_profile.update_profile(
            session,
            runtime.keyring,
            citizen.fiscal_code,
            body,
            on_email_changed=email_changed_hook(runtime, citizen.identity.name),
        )
        return await citizen_profile.initialized_profile(
            session, runtime.keyring, citizen, outcome.profile
        )


@router.get(
    "/services/{service_id}/preferences",
    operation_id="getServicePreferences",
    response_model=ServicePreferenceOut,
    responses={**problem_responses(400, 404, 409), **UNAUTHORIZED},
)
async def get_service_preferences(
    request: Request, citizen: Citizen, service_id: ServiceId
) -> ServicePreferenceOut:
    """How this service may reach the citizen (defaults when never set)."""
    async with get_runtime(request).sessions() as session:
        return await citizen_profile.get_preference(session, citizen.fiscal_code, service_id)


@router.post(
    "/services/{service_id}/preferences",
    operation_id="upsertServicePreferences",
    response_model=ServicePreferenceOut,
    responses={**problem_responses(400, 404, 409), **UNAUTHORIZED},
    openapi_extra={"x-civio-body-title": "Invalid UpsertServicePreference"},
)
async def upsert_service_preferences(
    request: Request, citizen: Citizen, service_id: ServiceId, body: UpsertServicePreference
) -> ServicePreferenceOut:
    """Set this service's switches for the citizen's current preferences version."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session, session.begin():
        return await citizen_profile.upsert_preference(
            session, runtime.keyring, citizen.fiscal_code, service_id, body
        )
