"""Wire shapes of the management API, named and shaped as IO's ``Cms*`` definitions
(``pa-api.yaml``: CmsServicePayload, CmsServiceLifecycle, CmsServicePublication, …)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from civio.core.types import (
    CIDR,
    FiscalCode,
    IOModel,
    Name,
    NoControlOrBidi,
    OrganizationFiscalCode,
)
from civio.services.schemas import Email

MAX_PAYMENT_AMOUNT = 9_999_999_999

Text = Annotated[str, StringConstraints(strict=True, min_length=1), NoControlOrBidi]
Scope = Literal["NATIONAL", "LOCAL"]


class CmsOrganization(IOModel):
    name: Name
    fiscal_code: OrganizationFiscalCode
    department_name: Name | None = None


class CmsServicePayloadMetadata(IOModel):
    scope: Scope
    topic_id: int
    web_url: Text | None = None
    app_ios: Text | None = None
    app_android: Text | None = None
    tos_url: Text | None = None
    privacy_url: Text | None = None
    address: Text | None = None
    phone: Text | None = None
    email: Text | None = None
    pec: Text | None = None
    cta: Text | None = None
    token_name: Text | None = None
    support_url: Text | None = None


class CmsServicePayload(IOModel):
    name: Name
    description: Text
    organization: CmsOrganization
    require_secure_channel: bool = False
    authorized_recipients: list[FiscalCode] = Field(default_factory=list)
    authorized_cidrs: list[CIDR] = Field(default_factory=list)
    max_allowed_payment_amount: Annotated[int, Field(ge=0, le=MAX_PAYMENT_AMOUNT)] = 0
    metadata: CmsServicePayloadMetadata


class CmsReviewRequest(IOModel):
    auto_publish: bool


class CmsServiceTopic(BaseModel):
    id: int
    name: str


class CmsServiceTopicList(BaseModel):
    topics: list[CmsServiceTopic]


class CmsOrganizationOut(BaseModel):
    name: str
    fiscal_code: str
    department_name: str | None = None


class CmsServiceMetadata(BaseModel):
    """Stored metadata as IO answers it: ``topic_id`` becomes ``topic {id, name}``."""

    model_config = ConfigDict(extra="allow")

    scope: Scope
    topic: CmsServiceTopic | None = None


class CmsServiceData(BaseModel):
    name: str
    description: str
    organization: CmsOrganizationOut
    require_secure_channel: bool
    authorized_recipients: list[str]
    authorized_cidrs: list[str]
    max_allowed_payment_amount: int
    metadata: CmsServiceMetadata


class CmsServiceLifecycleStatus(BaseModel):
    value: Literal["draft", "submitted", "approved", "rejected", "deleted"]
    reason: str | None = None


class CmsServiceLifecycle(CmsServiceData):
    id: str
    status: CmsServiceLifecycleStatus
    last_update: str


class CmsServicePublication(CmsServiceData):
    id: str
    status: Literal["published", "unpublished"]
    last_update: str


class CmsPaginationResultSet(BaseModel):
    offset: int
    limit: int
    count: int


class CmsServicePagination(BaseModel):
    value: list[CmsServiceLifecycle]
    pagination: CmsPaginationResultSet


class CmsServiceHistoryItemStatus(BaseModel):
    kind: Literal["publication", "lifecycle"]
    value: Literal[
        "draft", "submitted", "approved", "rejected", "deleted", "published", "unpublished"
    ]
    reason: str | None = None


class CmsServiceHistoryItem(CmsServiceData):
    id: str
    status: CmsServiceHistoryItemStatus
    last_update: str


class CmsServiceHistory(BaseModel):
    continuationToken: str | None = None  # IO's spelling
    items: list[CmsServiceHistoryItem]


class CmsSubscriptionKeys(BaseModel):
    primary_key: str
    secondary_key: str


class OwnerWithManageKeys(BaseModel):
    """An owner and, in the answer that generated them, its manage keys (shown once)."""

    id: str
    email: str
    primary_key: str | None = None
    secondary_key: str | None = None


class OwnerCreate(IOModel):
    email: Email


class ReviewDecision(IOModel):
    """The operator's verdict on a submitted service (``/admin/v1``)."""

    reason: Text | None = None


def service_data(data: dict[str, Any]) -> dict[str, Any]:
    """Only the ``CmsServiceData`` fields of a stored copy (stored copies hold nothing else
    today; this keeps an old row with an extra key from breaking a response)."""
    keys = CmsServiceData.model_fields
    return {k: v for k, v in data.items() if k in keys}
