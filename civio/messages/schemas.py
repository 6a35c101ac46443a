"""IO's ``NewMessage`` and ``ExternalMessageResponseWithContent`` shapes.

Bounds are inclusive on both ends, as IO's generated codecs make them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from civio.core.types import (
    FiscalCode,
    IOModel,
    NoControl,
    NoControlButLayout,
    NonEmptyString,
    OrganizationFiscalCode,
    Timestamp,
    Ulid,
)

# The subject becomes a mail header: one line. The markdown keeps its line breaks and tabs.
Subject = Annotated[str, StringConstraints(strict=True, min_length=10, max_length=120), NoControl]
Markdown = Annotated[
    str, StringConstraints(strict=True, min_length=80, max_length=10000), NoControlButLayout
]
TimeToLive = Annotated[int, Field(strict=True, ge=3600, le=604800)]
Amount = Annotated[int, Field(strict=True, ge=1, le=9_999_999_999)]
NoticeNumber = Annotated[str, StringConstraints(strict=True, pattern=r"^[0123][0-9]{17}$")]
FeatureLevelType = Literal["STANDARD", "ADVANCED"]
HasPrecondition = Literal["ALWAYS", "ONCE", "NEVER"]


class Payee(IOModel):
    fiscal_code: OrganizationFiscalCode


class PaymentData(IOModel):
    amount: Amount
    notice_number: NoticeNumber
    invalid_after_due_date: bool = False
    payee: Payee | None = None


class PrescriptionData(IOModel):
    nre: Annotated[str, StringConstraints(strict=True, min_length=15, max_length=15)]
    iup: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=16)] | None = None
    prescriber_fiscal_code: FiscalCode | None = None


class LegalData(IOModel):
    sender_mail_from: NonEmptyString
    has_attachment: bool = False
    message_unique_id: NonEmptyString
    original_message_url: NonEmptyString | None = None
    pec_server_service_id: NonEmptyString | None = None


class EUCovidCert(IOModel):
    auth_code: Annotated[str, StringConstraints(strict=True)]


class ThirdPartyData(IOModel):
    id: NonEmptyString
    original_sender: NonEmptyString | None = None
    original_receipt_date: Timestamp | None = None
    has_attachments: bool = False
    has_remote_content: bool = False
    has_precondition: HasPrecondition | None = None
    summary: NonEmptyString | None = None
    configuration_id: Ulid | None = None


class MessageContent(IOModel):
    subject: Subject
    markdown: Markdown
    require_secure_channels: bool | None = None
    due_date: Timestamp | None = None
    payment_data: PaymentData | None = None
    prescription_data: PrescriptionData | None = None
    legal_data: LegalData | None = None
    eu_covid_cert: EUCovidCert | None = None
    third_party_data: ThirdPartyData | None = None


class DefaultAddresses(IOModel):
    email: str | None = None


class NewMessage(IOModel):
    """IO's NewMessage, or (beyond IO) a message by template: ``template_id`` (and
    optionally ``template_version``, else the latest) with ``personalisation`` in place of
    ``content``, and ``payment_data``/``due_date`` beside them since there is no content to
    hold them. Exactly one of ``content`` and ``template_id`` (checked by the service)."""

    content: MessageContent | None = None
    template_id: (
        Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)] | None
    ) = None
    template_version: Annotated[int, Field(strict=True, ge=1, le=2_147_483_647)] | None = None
    personalisation: Annotated[dict[str, Any], Field(max_length=200)] | None = None
    payment_data: PaymentData | None = None
    due_date: Timestamp | None = None
    time_to_live: TimeToLive = 3600
    fiscal_code: FiscalCode | None = None
    default_addresses: DefaultAddresses | None = None  # deprecated: accepted and ignored
    feature_level_type: FeatureLevelType = "STANDARD"


class CreatedMessage(BaseModel):
    id: str


MessageStatusValue = Literal["ACCEPTED", "THROTTLED", "FAILED", "PROCESSED", "REJECTED"]


class ExternalMessage(BaseModel):
    id: str
    fiscal_code: str
    time_to_live: int
    created_at: str
    content: dict[str, Any] | None = None
    sender_service_id: str
    feature_level_type: FeatureLevelType


ChannelStatus = Literal["SENT", "THROTTLED", "EXPIRED", "FAILED"]


class NotificationStatus(BaseModel):
    email: ChannelStatus | None = None
    webhook: ChannelStatus | None = None


class ExternalMessageResponseWithContent(BaseModel):
    message: ExternalMessage
    status: MessageStatusValue
    notification: NotificationStatus | None = None
    read_status: Literal["UNAVAILABLE", "UNREAD", "READ"] | None = None
