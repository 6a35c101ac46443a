"""Wire shapes of services: IO's ``Service`` / ``ServiceWithSubscriptionKeys`` and the
operator's create/update payloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from civio.core.types import (
    CIDR,
    FiscalCode,
    IOModel,
    Name,
    NoControlOrBidi,
    NonEmptyString,
    OrganizationFiscalCode,
)

MAX_PAYMENT_AMOUNT = 9_999_999_999


MetadataEmail = Annotated[str, StringConstraints(strict=True, min_length=1), NoControlOrBidi]


# IO's optional metadata strings (CommonServiceMetadata; scope and description aside): what
# the catalogue and the management API's copies show of a service's stored metadata.
OPTIONAL_METADATA_FIELDS = (
    "web_url",
    "app_ios",
    "app_android",
    "tos_url",
    "privacy_url",
    "address",
    "phone",
    "email",
    "pec",
    "cta",
    "token_name",
    "support_url",
)


def shown_metadata(stored: Mapping[str, Any]) -> dict[str, str]:
    """The optional metadata strings a service has set (non-empty), as IO shows them."""
    return {
        name: value
        for name in OPTIONAL_METADATA_FIELDS
        if isinstance(value := stored.get(name), str) and value
    }


class ServiceMetadata(IOModel):
    """IO's metadata; further properties are kept as given (checked as storable)."""

    model_config = ConfigDict(extra="allow")

    scope: Literal["NATIONAL", "LOCAL"] = "NATIONAL"
    category: Literal["STANDARD", "SPECIAL"] = "STANDARD"
    description: NonEmptyString | None = None
    web_url: NonEmptyString | None = None
    privacy_url: NonEmptyString | None = None
    tos_url: NonEmptyString | None = None
    email: MetadataEmail | None = None
    pec: MetadataEmail | None = None
    phone: NonEmptyString | None = None
    support_url: NonEmptyString | None = None
    address: NonEmptyString | None = None
    custom_special_flow: NonEmptyString | None = None


class ServiceOut(BaseModel):
    """IO's ``Service`` plus the operator's view (groups, owner email)."""

    id: str
    service_id: str
    service_name: str
    department_name: str
    organization_name: str
    organization_fiscal_code: str
    authorized_recipients: list[str]
    authorized_cidrs: list[str]
    max_allowed_payment_amount: int
    require_secure_channels: bool
    is_visible: bool
    version: int
    service_metadata: dict[str, Any]
    groups: list[str]
    owner_email: str
    # Beyond IO: where status events are POSTed (docs/callbacks.md).
    callback_url: str | None = None


class ServiceWithSubscriptionKeys(ServiceOut):
    primary_key: str | None = None
    secondary_key: str | None = None
    # The callback signing secret: present only in the answer that generated it.
    callback_secret: str | None = None


Amount = Annotated[int, Field(ge=0, le=MAX_PAYMENT_AMOUNT)]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), NoControlOrBidi]
# Checked in full (scheme, host, https and public addresses in production) by
# civio.callbacks.service.
CallbackUrl = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=2048)]


class ServiceCreate(IOModel):
    name: Name
    organization_name: Name
    organization_fiscal_code: OrganizationFiscalCode
    department_name: Name = "-"
    groups: list[str] | None = None
    authorized_recipients: list[FiscalCode] = Field(default_factory=list)
    authorized_cidrs: list[CIDR] = Field(default_factory=list)
    max_allowed_payment_amount: Amount = 0
    require_secure_channels: bool = False
    special: bool = False
    visible: bool = False
    owner_email: Email | None = None
    service_metadata: ServiceMetadata | None = None
    callback_url: CallbackUrl | None = None


class ServiceUpdate(IOModel):
    name: Name | None = None
    organization_name: Name | None = None
    organization_fiscal_code: OrganizationFiscalCode | None = None
    department_name: Name | None = None
    groups: list[str] | None = None
    authorized_recipients: list[FiscalCode] | None = None
    authorized_cidrs: list[CIDR] | None = None
    max_allowed_payment_amount: Amount | None = None
    require_secure_channels: bool | None = None
    special: bool | None = None
    visible: bool | None = None
    owner_email: Email | None = None
    service_metadata: ServiceMetadata | None = None
    # Absent: unchanged; a URL: set (a new secret is generated if it differs); null: removed.
    callback_url: CallbackUrl | None = None


class GroupsPayload(IOModel):
    groups: list[str] = Field(min_length=1)


class KeyRegenerated(BaseModel):
    primary_key: str | None = None
    secondary_key: str | None = None


class Logo(IOModel):
    logo: Annotated[str, StringConstraints(strict=True, min_length=1)]
