"""``/api/communication/v1``: the citizen's app registers the device that gets pushes.

``PUT /installations/{installationID}`` answers at once, like IO's backend. Unlike IO, which
ignores the path id and keys the installation by the hash of the fiscal code (one device per
citizen), civio keys it by the path id: a citizen may use several devices and browsers, and
a device that changes hands is rebound to the last citizen who registered it.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from civio.auth.dependencies import UNAUTHORIZED, Citizen
from civio.auth.schemas import SuccessResponse
from civio.core.problems import Problem, problem_responses
from civio.core.runtime import get_runtime
from civio.core.ssrf import OutboundGuard
from civio.notifications.push.installations import (
    INSTALLATION_ID_PATTERN,
    InstallationBody,
    check_endpoint,
    register_installation,
)
from civio.notifications.push.providers import load_vapid, vapid_public_key

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/communication/v1", tags=["communication"])
InstallationId = Annotated[
    str, Path(alias="installationID", min_length=1, max_length=128, pattern=INSTALLATION_ID_PATTERN)
]


@router.put(
    "/installations/{installationID}",
    operation_id="createOrUpdateInstallation",
    response_model=SuccessResponse,
    responses={**problem_responses(400), **UNAUTHORIZED},
    openapi_extra={"x-civio-body-title": "Invalid Installation"},
)
async def put_installation(
    request: Request, citizen: Citizen, installation_id: InstallationId, body: InstallationBody
) -> SuccessResponse:
    """Register this device (or browser) for the citizen's pushes, until logout."""
    runtime = get_runtime(request)
    await check_endpoint(body, OutboundGuard.of(runtime.settings))
    async with runtime.sessions() as session, session.begin():
        await register_installation(
            session,
            runtime.keyring,
            fiscal_code=citizen.fiscal_code,
            session_token_hash=citizen.token_hash,
            installation_id=installation_id,
            body=body,
        )
    log.info(
        "notifications.installation.registered",
        recipient=runtime.keyring.log_ref(citizen.fiscal_code),
        platform=body.platform,
    )
    return SuccessResponse(message="ok")


class WebPushKey(BaseModel):
    application_server_key: str = Field(serialization_alias="applicationServerKey")


@router.get(
    "/installations-webpush-key",
    operation_id="getWebPushKey",
    response_model=WebPushKey,
    response_model_by_alias=True,
    responses={**problem_responses(404), **UNAUTHORIZED},
)
async def get_webpush_key(request: Request, citizen: Citizen) -> WebPushKey:
    """civio's VAPID public key: a browser passes it to ``pushManager.subscribe`` as
    ``applicationServerKey`` before registering a ``webpush`` installation (civio extension)."""
    vapid = load_vapid(get_runtime(request).settings)
    if vapid is None:
        raise Problem(404, "Not Found", "Web Push is not configured on this server.")
    return WebPushKey(application_server_key=vapid_public_key(vapid))
