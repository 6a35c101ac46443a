"""PA API: submit and read messages (``/api/v1/messages``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from civio.core.problems import problem_responses
from civio.core.runtime import get_runtime
from civio.core.types import FISCAL_CODE_PATTERN
from civio.messages import service
from civio.messages.schemas import (
    CreatedMessage,
    ExternalMessageResponseWithContent,
    NewMessage,
)
from civio.services.gateway import Caller, require_groups

router = APIRouter(tags=["messages"])

FiscalCodePath = Annotated[
    str,
    Path(pattern=FISCAL_CODE_PATTERN, min_length=16, max_length=16, examples=["AAAAAA00A00A000A"]),
]
WRITE = require_groups("ApiMessageWrite", "ApiLimitedMessageWrite")
READ = require_groups("ApiMessageRead", "ApiLegalMessageRead")
SUBMIT_EXTRA: dict[str, Any] = {
    "x-civio-body-title": "Invalid message structure",
    "x-civio-param-titles": {"fiscal_code": "Invalid FiscalCode"},
}


async def _submit(
    request: Request, caller: Caller, fiscal_code: str | None, body: NewMessage
) -> JSONResponse:
    recipient, message_id = await service.accept_message(
        get_runtime(request), caller, fiscal_code, body
    )
    return JSONResponse(
        {"id": message_id},
        status_code=201,
        headers={"Location": f"/api/v1/messages/{recipient}/{message_id}"},
    )


@router.post(
    "/messages",
    operation_id="submitMessageforUserWithFiscalCodeInBody",
    status_code=201,
    response_model=CreatedMessage,
    responses=problem_responses(400, 401, 403, 404, 429, 500),
    openapi_extra=SUBMIT_EXTRA,
)
async def submit_message_with_fiscal_code_in_body(
    request: Request, message: NewMessage, caller: Annotated[Caller, Depends(WRITE)]
) -> JSONResponse:
    """Submit a message; the recipient's fiscal code is in the body."""
    return await _submit(request, caller, None, message)


@router.post(
    "/messages/{fiscal_code}",
    operation_id="submitMessageforUser",
    status_code=201,
    response_model=CreatedMessage,
    responses=problem_responses(400, 401, 403, 404, 429, 500),
    openapi_extra=SUBMIT_EXTRA,
)
async def submit_message_for_user(
    request: Request,
    fiscal_code: FiscalCodePath,
    message: NewMessage,
    caller: Annotated[Caller, Depends(WRITE)],
) -> JSONResponse:
    """Submit a message to the citizen identified by the path's fiscal code."""
    return await _submit(request, caller, fiscal_code, message)


@router.get(
    "/messages/{fiscal_code}/{id}",
    operation_id="getMessage",
    response_model=ExternalMessageResponseWithContent,
    response_model_exclude_none=True,
    responses=problem_responses(400, 401, 403, 404, 429),
    openapi_extra={"x-civio-param-titles": {"fiscal_code": "Invalid FiscalCode"}},
)
async def get_message(
    request: Request,
    fiscal_code: FiscalCodePath,
    id: Annotated[str, Path(min_length=1)],
    caller: Annotated[Caller, Depends(READ)],
) -> dict[str, Any]:
    """The message, its status, and its content once processed."""
    return await service.read_message(get_runtime(request), caller, fiscal_code, id)
