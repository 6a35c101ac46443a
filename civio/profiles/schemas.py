from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from civio.core.types import FiscalCode, IOModel

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
