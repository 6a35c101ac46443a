"""Profile rules that decide whether a service may reach a citizen.

The same functions answer the PA's limited-profile read (``sender_allowed``) and the
pipeline's blocking decision, so the two can never disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.crypto import KeyRing
from civio.core.keys import decrypt_for, encrypt_for
from civio.profiles.models import Activation, Profile, ServicePreference, SubscriptionEvent
from civio.profiles.schemas import CitizenOut, ProfileMode

INBOX = "INBOX"


@dataclass(frozen=True)
class Reachability:
    """What the profile says about one service, from the citizen's settings."""

    exists: bool
    inbox_enabled: bool
    blocked: frozenset[str]

    @property
    def sender_allowed(self) -> bool:
        return INBOX not in self.blocked


def blocked_channels(
    profile: Profile,
    service_id: str,
    preference: ServicePreference | None,
) -> set[str]:
    """IO's rules for a STANDARD service, by the profile's preference mode."""
    if profile.mode == "LEGACY":
        return set(profile.blocked_inbox_or_channels.get(service_id, []))
    if preference is None:
        # With no explicit preference, AUTO allows everything and MANUAL blocks the inbox.
        return {INBOX} if profile.mode == "MANUAL" else set()
    blocked = set()
    if not preference.is_inbox_enabled:
        blocked.add(INBOX)
    if not preference.is_email_enabled:
        blocked.add("EMAIL")
    if not preference.is_webhook_enabled:
        blocked.add("WEBHOOK")
    return blocked


def activation_allows(activation: Activation | None, now: datetime, grace_seconds: int) -> bool:
    """SPECIAL services: ACTIVE, or PENDING within the grace period; missing = INACTIVE."""
    if activation is None:
        return False
    if activation.status == "ACTIVE":
        return True
    if activation.status == "PENDING":
        return now - activation.updated_at <= timedelta(seconds=grace_seconds)
    return False


async def reachability(
    session: AsyncSession,
    fiscal_code: str,
    service_id: str,
    *,
    special: bool,
    grace_seconds: int,
    now: datetime | None = None,
) -> tuple[Profile | None, Reachability]:
    found = await reachabilities(
        session, [(fiscal_code, service_id, special)], grace_seconds=grace_seconds, now=now
    )
    return found[fiscal_code, service_id]


async def reachabilities(
    session: AsyncSession,
    asks: Iterable[tuple[str, str, bool]],
    *,
    grace_seconds: int,
    now: datetime | None = None,
) -> dict[tuple[str, str], tuple[Profile | None, Reachability]]:
    """``reachability`` for many (fiscal code, service id, is SPECIAL) at once, in at most
    three queries whatever their number: the pipeline decides a whole batch with it."""
    asks = set(asks)
    profiles = {
        profile.fiscal_code: profile
        for profile in await session.scalars(
            select(Profile).where(Profile.fiscal_code.in_({fc for fc, _, _ in asks}))
        )
    }
    preference_keys = [
        (fc, service_id, profiles[fc].service_preferences_settings_version)
        for fc, service_id, _ in asks
        if fc in profiles and profiles[fc].mode != "LEGACY"
    ]
    preferences: dict[tuple[str, str, int], ServicePreference] = {}
    if preference_keys:
        columns = (
            ServicePreference.fiscal_code,
            ServicePreference.service_id,
            ServicePreference.settings_version,
        )
        for preference in await session.scalars(
            select(ServicePreference).where(tuple_(*columns).in_(preference_keys))
        ):
            key = (preference.fiscal_code, preference.service_id, preference.settings_version)
            preferences[key] = preference
    activation_keys = [(fc, sid) for fc, sid, special in asks if special and fc in profiles]
    activations: dict[tuple[str, str], Activation] = {}
    if activation_keys:
        for activation in await session.scalars(
            select(Activation).where(
                tuple_(Activation.fiscal_code, Activation.service_id).in_(activation_keys)
            )
        ):
            activations[activation.fiscal_code, activation.service_id] = activation
    moment = now or datetime.now(UTC)
    found: dict[tuple[str, str], tuple[Profile | None, Reachability]] = {}
    for fiscal_code, service_id, special in asks:
        profile = profiles.get(fiscal_code)
        if profile is None:
            found[fiscal_code, service_id] = (
                None,
                Reachability(exists=False, inbox_enabled=False, blocked=frozenset({INBOX})),
            )
            continue
        version = profile.service_preferences_settings_version
        blocked = blocked_channels(
            profile, service_id, preferences.get((fiscal_code, service_id, version))
        )
        if special:
            if not activation_allows(
                activations.get((fiscal_code, service_id)), moment, grace_seconds
            ):
                blocked.add(INBOX)
            else:
                blocked.discard(INBOX)
        found[fiscal_code, service_id] = (
            profile,
            Reachability(
                exists=True, inbox_enabled=profile.is_inbox_enabled, blocked=frozenset(blocked)
            ),
        )
    return found


async def ensure_profile_at_login(
    session: AsyncSession, keyring: KeyRing, fiscal_code: str, spid_email: str | None
) -> Profile:
    """IO's first login: a profile with inbox and webhook off, the provider's email (not
    validated), LEGACY mode. An existing profile is left as it is."""
    profile = await session.get(Profile, fiscal_code)
    if profile is not None:
        return profile
    profile = Profile(
        fiscal_code=fiscal_code,
        mode="LEGACY",
        service_preferences_settings_version=-1,
        is_inbox_enabled=False,
        is_webhook_enabled=False,
        is_email_enabled=True,
        is_email_validated=False,
        preferred_languages=[],
        blocked_inbox_or_channels={},
        version=0,
    )
    if spid_email:
        await set_email(session, keyring, profile, spid_email)
    session.add(profile)
    await session.flush()
    return profile


def email_aad(fiscal_code: str) -> str:
    return f"profile-email:{fiscal_code}"


def email_lookup_hash(keyring: KeyRing, email: str) -> bytes:
    return keyring.keyed_hash("email", email.strip().lower())


async def set_email(session: AsyncSession, keyring: KeyRing, profile: Profile, email: str) -> None:
    """Store the address encrypted, plus its keyed hash for uniqueness checks."""
    normalised = email.strip()
    profile.email_ciphertext = await encrypt_for(
        session, keyring, profile.fiscal_code, normalised.encode(), email_aad(profile.fiscal_code)
    )
    profile.email_hash = email_lookup_hash(keyring, normalised)


async def read_email(session: AsyncSession, keyring: KeyRing, profile: Profile) -> str | None:
    if profile.email_ciphertext is None:
        return None
    plaintext = await decrypt_for(
        session,
        keyring,
        profile.fiscal_code,
        profile.email_ciphertext,
        email_aad(profile.fiscal_code),
    )
    return plaintext.decode()


async def email_taken_by_another(
    session: AsyncSession, email_hash: bytes, fiscal_code: str
) -> bool:
    """Whether another citizen has already validated this address."""
    other = await session.scalar(
        select(Profile.fiscal_code).where(
            Profile.email_hash == email_hash,
            Profile.is_email_validated.is_(True),
            Profile.fiscal_code != fiscal_code,
        )
    )
    return other is not None


# --- operator-side citizen management ---------------------------------------------------------


async def create_citizen(
    session: AsyncSession,
    keyring: KeyRing,
    fiscal_code: str,
    *,
    email: str | None,
    mode: ProfileMode,
    inbox: bool,
    blocked_services: list[str],
) -> Profile:
    profile = await session.get(Profile, fiscal_code, with_for_update=True)
    created = profile is None
    if profile is None:
        profile = Profile(
            fiscal_code=fiscal_code, version=0, service_preferences_settings_version=0
        )
        session.add(profile)
    else:
        profile.version += 1
    profile.mode = mode
    profile.service_preferences_settings_version = (
        -1 if mode == "LEGACY" else max(profile.service_preferences_settings_version or 0, 0)
    )
    profile.is_inbox_enabled = inbox
    profile.is_email_enabled = True
    profile.is_webhook_enabled = True
    profile.preferred_languages = profile.preferred_languages or ["it_IT"]
    if email is not None:
        # An operator vouches for the address, so it is stored as validated.
        await set_email(session, keyring, profile, email)
        profile.is_email_validated = True
    profile.blocked_inbox_or_channels = (
        {sid: [INBOX] for sid in blocked_services} if mode == "LEGACY" else {}
    )
    await session.flush()
    if mode != "LEGACY":
        for service_id in blocked_services:
            await session.execute(
                insert(ServicePreference)
                .values(
                    fiscal_code=fiscal_code,
                    service_id=service_id,
                    settings_version=profile.service_preferences_settings_version,
                    is_inbox_enabled=False,
                    is_email_enabled=False,
                    is_webhook_enabled=False,
                    can_access_message_read_status=True,
                )
                .on_conflict_do_update(
                    index_elements=["fiscal_code", "service_id", "settings_version"],
                    set_={"is_inbox_enabled": False},
                )
            )
    if created:
        await record_subscription_event(
            session, keyring, fiscal_code, service_id=None, subscribed=True
        )
    return profile


def _feed_context(day: date, service_id: str | None) -> str:
    """What a sealed feed hash is bound to: a copy moved to another day or service does
    not open."""
    return f"{day.isoformat()}:{service_id or ''}"


async def record_subscription_event(
    session: AsyncSession,
    keyring: KeyRing,
    fiscal_code: str,
    *,
    service_id: str | None,
    subscribed: bool,
    day: date | None = None,
) -> None:
    """Record a change the subscriptions feed will publish: the hash IO's wire format
    requires, sealed (``SubscriptionEvent`` says why)."""
    day = day or datetime.now(UTC).date()
    published = hashlib.sha256(fiscal_code.upper().encode()).digest()
    session.add(
        SubscriptionEvent(
            day=day,
            published_hash_sealed=keyring.seal_feed_hash(_feed_context(day, service_id), published),
            service_id=service_id,
            subscribed=subscribed,
        )
    )
    await session.flush()


LEGACY_DIGEST_BYTES = 32  # rows written before migration 0007: the digest, not sealed


def published_hash(keyring: KeyRing, event: Any) -> str:
    """The lowercase hex sha256 an event publishes (``event`` has its row's columns)."""
    stored = bytes(event.published_hash_sealed)
    if len(stored) != LEGACY_DIGEST_BYTES:
        stored = keyring.open_feed_hash(_feed_context(event.day, event.service_id), stored)
    return stored.hex()


@dataclass(frozen=True)
class Feed:
    subscriptions: list[str]
    unsubscriptions: list[str]


async def subscriptions_feed(
    session: AsyncSession, keyring: KeyRing, service_id: str, day: date
) -> Feed:
    """IO's feed for one service and one UTC day, as lowercase hex sha256 of fiscal codes.

    Subscriptions: profiles created that day that did not leave this service, plus this
    service's subscriptions from citizens whose profile was neither created nor deleted
    that day; unsubscriptions the other way round (io-pa-api.md §1.4).
    """
    events = (
        await session.execute(
            select(
                SubscriptionEvent.day,
                SubscriptionEvent.published_hash_sealed,
                SubscriptionEvent.service_id,
                SubscriptionEvent.subscribed,
            )
            .where(SubscriptionEvent.day == day)
            .where(
                (SubscriptionEvent.service_id.is_(None))
                | (SubscriptionEvent.service_id == service_id)
            )
            .order_by(SubscriptionEvent.id)
        )
    ).all()
    rows = [(published_hash(keyring, e), e.service_id, e.subscribed) for e in events]
    profile_in = {h for h, sid, sub in rows if sid is None and sub}
    profile_out = {h for h, sid, sub in rows if sid is None and not sub}
    # The last service-level event of the day wins for each citizen.
    service_state: dict[str, bool] = {}
    for h, sid, sub in rows:
        if sid is not None:
            service_state[h] = sub
    service_in = {h for h, sub in service_state.items() if sub}
    service_out = {h for h, sub in service_state.items() if not sub}
    profile_touched = profile_in | profile_out
    return Feed(
        subscriptions=sorted((profile_in - service_out) | (service_in - profile_touched)),
        unsubscriptions=sorted((profile_out - service_in) | (service_out - profile_touched)),
    )


async def citizen_view(session: AsyncSession, keyring: KeyRing, profile: Profile) -> CitizenOut:
    email = await read_email(session, keyring, profile)
    if profile.mode == "LEGACY":
        blocked = [
            sid for sid, chans in profile.blocked_inbox_or_channels.items() if INBOX in chans
        ]
    else:
        blocked = list(
            (
                await session.scalars(
                    select(ServicePreference.service_id).where(
                        ServicePreference.fiscal_code == profile.fiscal_code,
                        ServicePreference.settings_version
                        == profile.service_preferences_settings_version,
                        ServicePreference.is_inbox_enabled.is_(False),
                    )
                )
            ).all()
        )
    return CitizenOut(
        fiscal_code=profile.fiscal_code,
        mode=profile.mode,
        is_inbox_enabled=profile.is_inbox_enabled,
        is_email_enabled=profile.is_email_enabled,
        is_email_validated=profile.is_email_validated,
        is_webhook_enabled=profile.is_webhook_enabled,
        email=email,
        preferred_languages=list(profile.preferred_languages),
        blocked_inbox_or_channels={
            k: list(v) for k, v in profile.blocked_inbox_or_channels.items()
        },
        blocked_services=sorted(blocked),
        version=profile.version,
    )
