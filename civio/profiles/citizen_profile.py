"""The citizen's own view of their profile and preferences, with IO's update rules.

Rules of ``POST /profile``, in IO's order: stale version → 409; email changed to one another
citizen validated → 412; AUTO/MANUAL → LEGACY → 409; a mode change bumps the preferences
version (LEGACY -1 → 0 → 1 …) and so invalidates every per-service preference; a new email
is unvalidated; the first accepted ToS switches inbox and webhook on; blocked channels live
only in LEGACY mode; app version, push content type and reminder status are always taken
from the body (omitted = reset); every other omitted field keeps its value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from civio.auth.service import AuthenticatedCitizen
from civio.core.crypto import KeyRing
from civio.core.problems import Problem
from civio.profiles.models import Activation, Profile, ServicePreference
from civio.profiles.schemas import (
    InitializedProfile,
    ProfileUpdate,
    ServicePreferenceOut,
    ServicePreferencesSettings,
    UpsertServicePreference,
)
from civio.profiles.service import (
    INBOX,
    email_lookup_hash,
    email_taken_by_another,
    read_email,
    record_subscription_event,
    set_email,
)
from civio.services.models import Service

EMAIL_ALREADY_TAKEN = "https://ioapp.it/problems/email-already-taken"

# Called inside the update's transaction when the email changed (starts validation).
EmailChangedHook = Callable[[AsyncSession, Profile], Awaitable[None]]


def profile_not_found() -> Problem:
    return Problem(404, "Profile not found", "The profile you requested was not found.")


async def load_profile(session: AsyncSession, fiscal_code: str, *, lock: bool = False) -> Profile:
    profile = await session.get(Profile, fiscal_code, with_for_update=lock)
    if profile is None:
        raise profile_not_found()
    return profile


async def initialized_profile(
    session: AsyncSession, keyring: KeyRing, citizen: AuthenticatedCitizen, profile: Profile
) -> InitializedProfile:
    email = await read_email(session, keyring, profile)
    taken = (
        email is not None
        and not profile.is_email_validated
        and profile.email_hash is not None
        and await email_taken_by_another(session, profile.email_hash, profile.fiscal_code)
    )
    identity = citizen.identity
    return InitializedProfile(
        accepted_tos_version=profile.accepted_tos_version,
        email=email,
        blocked_inbox_or_channels=(
            dict(profile.blocked_inbox_or_channels) if profile.mode == "LEGACY" else None
        ),
        preferred_languages=list(profile.preferred_languages) or None,
        is_inbox_enabled=profile.is_inbox_enabled,
        is_email_validated=profile.is_email_validated,
        is_email_enabled=profile.is_email_enabled,
        is_email_already_taken=taken,
        reminder_status=profile.reminder_status,
        push_notifications_content_type=profile.push_notifications_content_type,
        is_webhook_enabled=profile.is_webhook_enabled,
        family_name=identity.family_name,
        fiscal_code=profile.fiscal_code,
        has_profile=True,
        last_app_version=profile.last_app_version,
        name=identity.name,
        spid_email=identity.spid_email,
        date_of_birth=identity.date_of_birth,
        service_preferences_settings=ServicePreferencesSettings(
            mode=profile.mode,
            version=profile.service_preferences_settings_version,
        ),
        version=profile.version,
    )


@dataclass(frozen=True)
class UpdateOutcome:
    profile: Profile
    email_changed: bool


async def update_profile(
    session: AsyncSession,
    keyring: KeyRing,
    fiscal_code: str,
    body: ProfileUpdate,
    *,
    on_email_changed: EmailChangedHook | None = None,
) -> UpdateOutcome:
    profile = await load_profile(session, fiscal_code, lock=True)
    if body.version != profile.version:
        raise Problem(409, "Conflict", f"Version {body.version} is not the latest version.")

    email_changed = False
    if body.email is not None:
        new_hash = email_lookup_hash(keyring, body.email)
        email_changed = new_hash != profile.email_hash
        if email_changed and await email_taken_by_another(session, new_hash, fiscal_code):
            raise Problem(
                412,
                "Email already taken",
                "The email address is already validated by another citizen.",
                type_=EMAIL_ALREADY_TAKEN,
            )

    requested_mode = (
        body.service_preferences_settings.mode if body.service_preferences_settings else "LEGACY"
    )
    if profile.mode != "LEGACY" and requested_mode == "LEGACY":
        raise Problem(409, "Conflict", "Can not perform a downgrade over service preferences mode")
    if requested_mode != profile.mode:
        if profile.mode == "LEGACY":
            await _migrate_legacy_blocks(
                session,
                profile,
                new_version=max(0, profile.service_preferences_settings_version + 1),
            )
        profile.service_preferences_settings_version = max(
            0, profile.service_preferences_settings_version + 1
        )
        profile.mode = requested_mode

    if body.email is not None and email_changed:
        await set_email(session, keyring, profile, body.email)
        profile.is_email_validated = False

    was_inbox_enabled = profile.is_inbox_enabled
    if body.preferred_languages is not None:
        profile.preferred_languages = list(body.preferred_languages)
    if body.is_inbox_enabled is not None:
        profile.is_inbox_enabled = body.is_inbox_enabled
    if body.is_webhook_enabled is not None:
        profile.is_webhook_enabled = body.is_webhook_enabled
    if body.is_email_enabled is not None:
        profile.is_email_enabled = body.is_email_enabled
    if body.accepted_tos_version is not None:
        if profile.accepted_tos_version is None:
            profile.is_inbox_enabled = True
            profile.is_webhook_enabled = True
        profile.accepted_tos_version = body.accepted_tos_version
    if profile.mode == "LEGACY":
        if body.blocked_inbox_or_channels is not None:
            profile.blocked_inbox_or_channels = {
                sid: list(dict.fromkeys(chans))
                for sid, chans in body.blocked_inbox_or_channels.items()
            }
    else:
        profile.blocked_inbox_or_channels = {}
    profile.last_app_version = body.last_app_version
    profile.push_notifications_content_type = body.push_notifications_content_type
    profile.reminder_status = body.reminder_status
    profile.version += 1

    if profile.is_inbox_enabled != was_inbox_enabled:
        await record_subscription_event(
            session, keyring, fiscal_code, service_id=None, subscribed=profile.is_inbox_enabled
        )
    await session.flush()
    if email_changed and on_email_changed is not None:
        await on_email_changed(session, profile)
    return UpdateOutcome(profile=profile, email_changed=email_changed)


async def _migrate_legacy_blocks(session: AsyncSession, profile: Profile, new_version: int) -> None:
    """LEGACY → AUTO/MANUAL: the blocked list becomes per-service preferences."""
    for service_id, channels in profile.blocked_inbox_or_channels.items():
        await session.execute(
            insert(ServicePreference)
            .values(
                fiscal_code=profile.fiscal_code,
                service_id=service_id,
                settings_version=new_version,
                is_inbox_enabled=INBOX not in channels,
                is_email_enabled="EMAIL" not in channels,
                is_webhook_enabled="WEBHOOK" not in channels,
                can_access_message_read_status=None,
            )
            .on_conflict_do_nothing()
        )


# --- per-service preferences ----------------------------------------------------------------


async def _service(session: AsyncSession, service_id: str) -> Service:
    service = await session.get(Service, service_id)
    if service is None:
        raise Problem(404, "Service not found", f"No service with id {service_id}.")
    return service


def _not_legacy(profile: Profile) -> None:
    if profile.mode == "LEGACY":
        raise Problem(
            409,
            "Conflict",
            "Service preferences are not available in LEGACY mode: choose AUTO or MANUAL.",
        )


async def _special_inbox(
    session: AsyncSession, service: Service, fiscal_code: str, value: bool
) -> bool:
    """SPECIAL services: the inbox switch is the activation's status."""
    if service.category != "SPECIAL":
        return value
    activation = await session.get(Activation, (fiscal_code, service.service_id))
    return activation is not None and activation.status == "ACTIVE"


async def get_preference(
    session: AsyncSession, fiscal_code: str, service_id: str
) -> ServicePreferenceOut:
    profile = await load_profile(session, fiscal_code)
    service = await _service(session, service_id)
    _not_legacy(profile)
    version = profile.service_preferences_settings_version
    stored = await session.get(ServicePreference, (fiscal_code, service_id, version))
    if stored is None:
        # IO's defaults for a service without a stored preference: AUTO allows everything,
        # MANUAL denies everything, the read status too (io-functions-app's
        # toDefaultDisabledUserServicePreference).
        default = profile.mode == "AUTO"
        inbox, email, webhook, read_status = default, default, default, default
    else:
        inbox, email, webhook = (
            stored.is_inbox_enabled,
            stored.is_email_enabled,
            stored.is_webhook_enabled,
        )
        read_status = stored.can_access_message_read_status is not False
    return ServicePreferenceOut(
        is_inbox_enabled=await _special_inbox(session, service, fiscal_code, inbox),
        is_email_enabled=email,
        is_webhook_enabled=webhook,
        settings_version=version,
        can_access_message_read_status=read_status,
    )


async def upsert_preference(
    session: AsyncSession,
    keyring: KeyRing,
    fiscal_code: str,
    service_id: str,
    body: UpsertServicePreference,
) -> ServicePreferenceOut:
    profile = await load_profile(session, fiscal_code, lock=True)
    service = await _service(session, service_id)
    _not_legacy(profile)
    version = profile.service_preferences_settings_version
    if body.settings_version != version:
        raise Problem(
            409,
            "Conflict",
            f"settings_version {body.settings_version} is not the profile's current "
            f"preferences version ({version}).",
        )
    before = await get_preference(session, fiscal_code, service_id)
    await session.execute(
        insert(ServicePreference)
        .values(
            fiscal_code=fiscal_code,
            service_id=service_id,
            settings_version=version,
            is_inbox_enabled=body.is_inbox_enabled,
            is_email_enabled=body.is_email_enabled,
            is_webhook_enabled=body.is_webhook_enabled,
            can_access_message_read_status=body.can_access_message_read_status,
        )
        .on_conflict_do_update(
            index_elements=["fiscal_code", "service_id", "settings_version"],
            set_={
                "is_inbox_enabled": body.is_inbox_enabled,
                "is_email_enabled": body.is_email_enabled,
                "is_webhook_enabled": body.is_webhook_enabled,
                "can_access_message_read_status": body.can_access_message_read_status,
            },
        )
    )
    after = await get_preference(session, fiscal_code, service_id)
    if service.category != "SPECIAL" and after.is_inbox_enabled != before.is_inbox_enabled:
        await record_subscription_event(
            session, keyring, fiscal_code, service_id=service_id, subscribed=after.is_inbox_enabled
        )
    return after
