"""The bridge from a profile update to the email-validation process."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.runtime import Runtime
from civio.profiles.citizen_profile import EmailChangedHook
from civio.profiles.email_validation import start_email_validation
from civio.profiles.models import Profile


def email_changed_hook(runtime: Runtime, name: str | None) -> EmailChangedHook:
    """A new address starts its validation inside the update's own transaction."""

    async def start(session: AsyncSession, profile: Profile) -> None:
        await start_email_validation(session, runtime, profile, name=name)

    return start
