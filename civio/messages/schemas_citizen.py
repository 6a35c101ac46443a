"""Wire shapes of the citizen's inbox (``/api/communication/v1/messages``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from civio.core.types import IOModel


class MessageStatusAttributes(BaseModel):
    is_read: bool
    is_archived: bool


class InboxItem(BaseModel):
    """IO's ``PublicMessage``: the plain fields, plus the enriched ones when asked for."""

    id: str
    fiscal_code: str
    created_at: str
    sender_service_id: str
    time_to_live: int | None = None
    service_name: str | None = None
    organization_name: str | None = None
    organization_fiscal_code: str | None = None
    message_title: str | None = None
    category: dict[str, Any] | None = None
    has_attachments: bool | None = None
    has_precondition: bool | None = None
    is_read: bool | None = None
    is_archived: bool | None = None


class InboxPage(BaseModel):
    items: list[InboxItem]
    prev: str | None = None
    next: str | None = None


class CitizenMessage(InboxItem):
    """IO's ``CreatedMessageWithContent`` (+ enriched data with ``public_message=true``).

    ``calls_to_action`` is civio's extension (docs/cta.md): IO's schema admits extra
    properties, and IO's clients ignore them; ``content.markdown`` stays as sent.
    """

    content: dict[str, Any]
    calls_to_action: dict[str, dict[str, dict[str, str]]] | None = Field(
        default=None,
        description=(
            "civio extension: the buttons of the markdown's CTA block, by locale (it, en, de) "
            "then cta_1/cta_2, each {text, action, kind: link|internal|sso, target}. "
            "Absent when the markdown has no block; content.markdown still holds it."
        ),
    )


class ReadingChange(IOModel):
    change_type: Literal["reading"]
    is_read: Literal[True]


class ArchivingChange(IOModel):
    change_type: Literal["archiving"]
    is_archived: bool


class BulkChange(IOModel):
    change_type: Literal["bulk"]
    is_archived: bool
    is_read: Literal[True] | None = None


MessageStatusChange = Annotated[
    ReadingChange | ArchivingChange | BulkChange, Field(discriminator="change_type")
]
