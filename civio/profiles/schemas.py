from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from civio.core.types import EmailString, FiscalCode, IOModel

PreferredLanguage = Literal["it_IT", "en_GB", "es_ES", "de_DE", "fr_FR"]
ActivationStatus = Literal["ACTIVE", "INACTIVE", "PENDING"]
ProfileMode = Literal["LEGACY", "AUTO", "MANUAL"]


class FiscalCodePayload(IOModel):
    fiscal_code: FiscalCode


class LimitedProfile(BaseModel):
    sender_allowed: bool
    preferred_languages: list[PreferredLanguage] | None = None


class ActivationPayload(IOModel):
    fiscal_code: FiscalCode
    status: ActivationStatus


class Activation(BaseModel):
    service_id: str
    fiscal_code: str
    status: ActivationStatus
    version: int


class SubscriptionsFeed(BaseModel):
    dateUTC: str
    subscriptions: list[str]
    unsubscriptions: list[str]


class CitizenOut(BaseModel):
    """The operator's view of a profile (``civio citizen show``)."""

    fiscal_code: str
    mode: ProfileMode
    is_inbox_enabled: bool
    is_email_enabled: bool
    is_email_validated: bool
    is_webhook_enabled: bool
    email: str | None
    preferred_languages: list[str]
    blocked_inbox_or_channels: dict[str, list[str]]
    blocked_services: list[str]
    version: int


AppVersion = Annotated[
    str,
    StringConstraints(
        strict=True, pattern=r"^((0|[1-9]\d*)\.){2}(0|[1-9]\d*)(\.(0|[1-9]\d*)){0,1}$"
    ),
]
Channel = Literal["EMAIL", "INBOX", "WEBHOOK"]
ReminderStatus = Literal["ENABLED", "DISABLED"]
PushContentType = Literal["FULL", "ANONYMOUS"]


class ServicePreferencesSettingsIn(IOModel):
    mode: ProfileMode


class ServicePreferencesSettings(BaseModel):
    mode: ProfileMode
    version: int


class ProfileUpdate(IOModel):
    """IO's ``Profile`` body. Omitted fields keep their value, except the three that IO
    always takes from the body (app version, push content type, reminder status)."""

    email: EmailString | None = None
    service_preferences_settings: ServicePreferencesSettingsIn | None = None
    blocked_inbox_or_channels: dict[str, list[Channel]] | None = None
    preferred_languages: list[PreferredLanguage] | None = None
    is_inbox_enabled: bool | None = None
    accepted_tos_version: Annotated[float, Field(ge=1)] | None = None
    is_webhook_enabled: bool | None = None
    is_email_enabled: bool | None = None
    reminder_status: ReminderStatus | None = None
    last_app_version: AppVersion | None = None
    push_notifications_content_type: PushContentType | None = None
    version: Annotated[int, Field(strict=True)]


class InitializedProfile(BaseModel):
    accepted_tos_version: float | None = None
    email: str | None = None
    blocked_inbox_or_channels: dict[str, list[str]] | None = None
    preferred_languages: list[str] | None = None
    is_inbox_enabled: bool
    is_email_validated: bool
    is_email_enabled: bool
    is_email_already_taken: bool = False
    reminder_status: ReminderStatus | None = None
    push_notifications_content_type: PushContentType | None = None
    is_webhook_enabled: bool
    family_name: str
    fiscal_code: str
    has_profile: bool = True
    last_app_version: str | None = None
    name: str
    spid_email: str | None = None
    date_of_birth: str | None = None
    service_preferences_settings: ServicePreferencesSettings
    version: int


class BasicServicePreference(IOModel):
    is_email_enabled: bool
    is_inbox_enabled: bool
    is_webhook_enabled: bool
    settings_version: Annotated[int, Field(strict=True, ge=0)]


class UpsertServicePreference(BasicServicePreference):
    can_access_message_read_status: bool | None = None


class ServicePreferenceOut(BaseModel):
    is_email_enabled: bool
    is_inbox_enabled: bool
    is_webhook_enabled: bool
    settings_version: int
    can_access_message_read_status: bool
