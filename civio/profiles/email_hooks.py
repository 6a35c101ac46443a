"""The bridge from a profile update to the email-validation process."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.runtime import Runtime
from civio.profiles.citizen_profile import EmailChangedHook
from civio.profiles.models import Profile


def email_changed_hook(runtime: Runtime) -> EmailChangedHook:
    async def start(session: AsyncSession, profile: Profile) -> None:
        # Filled in when the email-validation process lands (civio.profiles.email_validation).
        return None

    return start
