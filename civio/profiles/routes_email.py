"""Email validation over HTTP: the citizen starts it (bearer), the mailed link ends it (public).

The link's ``GET /validate-profile-email`` answers with redirects to the pages in
``CIVIO_EMAIL_VALIDATION_CONFIRM_URL`` / ``…_CALLBACK_URL``, as IO's io-public does; the
``/api/v2`` pair is the JSON variant those pages (or an app) call instead. The default flow,
CONFIRM, changes nothing, so a mail scanner that prefetches the link cannot validate it.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import structlog
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, StringConstraints

from civio.auth.dependencies import UNAUTHORIZED, Citizen
from civio.core.problems import Problem, problem_responses
from civio.core.runtime import Runtime, get_runtime
from civio.core.types import IOModel
from civio.profiles.email_validation import (
    TOKEN_PATTERN,
    CheckedToken,
    ValidationError,
    ValidationFailed,
    check_token,
    start_email_validation,
    validate_email,
)
from civio.profiles.models import Profile

log = structlog.get_logger(__name__)

router = APIRouter()
TOKEN_HEADER = "x-pagopa-email-validation-token"  # noqa: S105 - a header name
# The token is a credential in the URL: keep it out of caches and Referer headers.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

ValidationToken = Annotated[str, StringConstraints(strict=True, pattern=TOKEN_PATTERN)]


class Flow(StrEnum):
    CONFIRM = "CONFIRM"
    VALIDATE = "VALIDATE"


class ValidateProfileEmailPayload(IOModel):
    token: ValidationToken


class TokenInfo(BaseModel):
    status: Literal["SUCCESS"] = "SUCCESS"
    profile_email: str


class StatusReport(BaseModel):
    status: Literal["SUCCESS"] = "SUCCESS"


class ValidationErrorsObject(BaseModel):
    status: Literal["FAILURE"] = "FAILURE"
    reason: Literal["TOKEN_EXPIRED", "EMAIL_ALREADY_TAKEN"]
    profile_email: str | None = None


class UnauthorizedResponse(BaseModel):
    status: Literal["FAILURE"] = "FAILURE"
    reason: Literal["INVALID_TOKEN"] = "INVALID_TOKEN"


# --- start -----------------------------------------------------------------------------------


@router.post(
    "/api/identity/v1/email-validation-process",
    operation_id="startEmailValidationProcess",
    status_code=202,
    response_class=Response,
    tags=["identity"],
    responses={
        202: {"description": "Accepted: the mail is on its way."},
        **problem_responses(400, 404, 409),
        **UNAUTHORIZED,
    },
)
async def start_email_validation_process(request: Request, citizen: Citizen) -> Response:
    """Mail a validation link to the profile's address. Each call issues a new link and
    voids the earlier ones; 400 once the address is validated, 409 when there is none."""
    runtime = get_runtime(request)
    async with runtime.sessions() as session, session.begin():
        profile = await session.get(Profile, citizen.fiscal_code, with_for_update=True)
        if profile is None:
            raise Problem(404, "Profile not found", "The profile you requested was not found.")
        await start_email_validation(session, runtime, profile, name=citizen.identity.name)
    return Response(status_code=202)


# --- the mailed link -------------------------------------------------------------------------


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    separator = "&" if "?" in url else "?"
    return url + separator + urlencode(params, safe=":", quote_via=quote)


def base64url(value: str) -> str:
    """Node's ``base64url`` (what IO's confirm page decodes): URL alphabet, no padding."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


async def _run(runtime: Runtime, token: str, *, validate: bool) -> CheckedToken | ValidationFailed:
    """One transaction; every failure, expected or not, becomes a ``ValidationFailed``."""
    try:
        async with runtime.sessions() as session, session.begin():
            if validate:
                return await validate_email(session, runtime.keyring, token)
            return await check_token(session, runtime.keyring, token)
    except ValidationFailed as failure:
        log.info("profiles.email_validation.rejected", reason=failure.reason.value)
        return failure
    except Exception as exc:
        log.error("profiles.email_validation.error", error=type(exc).__name__)
        return ValidationFailed(ValidationError.GENERIC_ERROR)


@router.get(
    "/validate-profile-email",
    operation_id="validateProfileEmail",
    status_code=303,
    response_class=RedirectResponse,
    tags=["email validation"],
    responses={
        303: {"description": "To the confirm page, or to the callback page with the result."},
        **problem_responses(400),
    },
)
async def validate_profile_email(
    request: Request,
    token: Annotated[str, Query(min_length=1)],
    flow: Annotated[Flow, Query()] = Flow.CONFIRM,
) -> RedirectResponse:
    """CONFIRM checks the link and sends the browser to the confirm page with the token and
    the address (base64url); VALIDATE validates the address and spends the link."""
    runtime = get_runtime(request)
    settings = runtime.settings
    result = await _run(runtime, token, validate=flow == Flow.VALIDATE)
    if isinstance(result, ValidationFailed):
        target = _with_query(
            settings.email_validation_callback_url,
            [("result", "failure"), ("error", result.reason.value)],
        )
    elif flow == Flow.VALIDATE:
        target = _with_query(settings.email_validation_callback_url, [("result", "success")])
    else:
        target = _with_query(
            settings.email_validation_confirm_url,
            [("token", token), ("email", base64url(result.email))],
        )
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


def _v2_failure(failure: ValidationFailed) -> JSONResponse:
    if failure.reason == ValidationError.INVALID_TOKEN:
        return JSONResponse(UnauthorizedResponse().model_dump(), status_code=401, headers=NO_STORE)
    if failure.reason == ValidationError.GENERIC_ERROR:
        problem = Problem(500, "Internal server error", ValidationError.GENERIC_ERROR.value)
        return JSONResponse(problem.body(), status_code=500, media_type="application/problem+json")
    reason: Literal["TOKEN_EXPIRED", "EMAIL_ALREADY_TAKEN"] = (
        "TOKEN_EXPIRED"
        if failure.reason == ValidationError.TOKEN_EXPIRED
        else "EMAIL_ALREADY_TAKEN"
    )
    body = ValidationErrorsObject(reason=reason, profile_email=failure.email)
    return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)


V2_RESPONSES: dict[int | str, dict[str, Any]] = {
    **problem_responses(400, 500),
    401: {"description": "Unknown or spent token.", "model": UnauthorizedResponse},
}


@router.get(
    "/api/v2/validate-profile-email",
    operation_id="getTokenInfo",
    response_model=TokenInfo | ValidationErrorsObject,
    tags=["email validation"],
    responses=V2_RESPONSES,
)
async def get_token_info(
    request: Request,
    token: Annotated[ValidationToken, Header(alias=TOKEN_HEADER)],
) -> TokenInfo | JSONResponse:
    """The confirm step: whether the token would validate, and the address it is for."""
    result = await _run(get_runtime(request), token, validate=False)
    if isinstance(result, ValidationFailed):
        return _v2_failure(result)
    return TokenInfo(profile_email=result.email)


@router.post(
    "/api/v2/validate-profile-email",
    operation_id="validateProfileEmailV2",
    response_model=StatusReport | ValidationErrorsObject,
    tags=["email validation"],
    responses=V2_RESPONSES,
    openapi_extra={"x-civio-body-title": "Invalid ValidateProfileEmailPayload"},
)
async def validate_profile_email_v2(
    request: Request, payload: ValidateProfileEmailPayload
) -> StatusReport | JSONResponse:
    """Validate the address and spend the token."""
    result = await _run(get_runtime(request), payload.token, validate=True)
    if isinstance(result, ValidationFailed):
        return _v2_failure(result)
    return StatusReport()
