"""``/api/communication/v1/messages``: the citizen's inbox."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request

from civio.auth.dependencies import UNAUTHORIZED, Citizen
from civio.core.problems import problem_responses
from civio.core.runtime import get_runtime
from civio.core.types import ULID_PATTERN
from civio.messages import inbox
from civio.messages.schemas_citizen import (
    CitizenMessage,
    InboxPage,
    MessageStatusAttributes,
    MessageStatusChange,
)

router = APIRouter(prefix="/api/communication/v1", tags=["communication"])
UlidQuery = Annotated[str | None, Query(pattern=ULID_PATTERN)]
MessageId = Annotated[str, Path(pattern=ULID_PATTERN)]
TITLES: dict[str, Any] = {
    "x-civio-param-titles": {
        "page_size": "Invalid PageSize",
        "maximum_id": "Invalid MaximumId",
        "minimum_id": "Invalid MinimumId",
        "id": "Invalid MessageId",
        "q": "Invalid q",
    }
}


@router.get(
    "/messages",
    operation_id="getUserMessages",
    response_model=InboxPage,
    response_model_exclude_none=True,
    responses={**problem_responses(400), **UNAUTHORIZED},
    openapi_extra=TITLES,
)
async def get_user_messages(
    request: Request,
    citizen: Citizen,
    page_size: Annotated[int, Query(ge=1, le=100)] = 100,
    enrich_result_data: bool = False,
    archived: bool = False,
    maximum_id: UlidQuery = None,
    minimum_id: UlidQuery = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> InboxPage:
    """Newest first; ``next`` (only when more exist) is the ``maximum_id`` of the next page.
    ``q`` searches words and word prefixes of subject, body and sender, ignoring case and
    accents."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session:
        return await inbox.list_messages(
            session,
            runtime.keyring,
            citizen.fiscal_code,
            page_size=page_size,
            archived=archived,
            enrich=enrich_result_data,
            maximum_id=maximum_id,
            minimum_id=minimum_id,
            query=q,
        )


@router.get(
    "/messages/{id}",
    operation_id="getUserMessage",
    response_model=CitizenMessage,
    response_model_exclude_none=True,
    responses={**problem_responses(400, 404), **UNAUTHORIZED},
    openapi_extra=TITLES,
)
async def get_user_message(
    request: Request, citizen: Citizen, id: MessageId, public_message: bool = False
) -> CitizenMessage:
    """One message with its content; ``public_message=true`` adds the enriched fields."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session:
        return await inbox.get_message(
            session, runtime.keyring, citizen.fiscal_code, id, enrich=public_message
        )


@router.put(
    "/messages/{id}/status",
    operation_id="upsertMessageStatusAttributes",
    response_model=MessageStatusAttributes,
    responses={**problem_responses(400, 404), **UNAUTHORIZED},
    openapi_extra={**TITLES, "x-civio-body-title": "Invalid MessageStatusChange"},
)
async def upsert_message_status(
    request: Request,
    citizen: Citizen,
    id: MessageId,
    change: Annotated[MessageStatusChange, Body()],
) -> MessageStatusAttributes:
    """Mark as read (only ``true``), archive or unarchive; every change is kept."""
    async with get_runtime(request).sessions() as session, session.begin():
        return await inbox.change_status(session, citizen.fiscal_code, id, change)
