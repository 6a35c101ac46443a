"""PA API: organization logo upload."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy.dialects.postgresql import insert

from civio.core.problems import Problem, forbidden, problem_responses
from civio.core.runtime import get_runtime
from civio.core.types import ORGANIZATION_FISCAL_CODE_PATTERN
from civio.services.gateway import Caller, check_cidr, require_groups
from civio.services.models import OrganizationLogo
from civio.services.schemas import Logo

router = APIRouter(tags=["organizations"])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decode_png(encoded: str) -> bytes:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(400, "Invalid Logo", "The logo is not valid base64.") from None
    if not data.startswith(PNG_MAGIC):
        raise Problem(400, "Invalid Logo", "The logo must be a PNG image.")
    return data


@router.put(
    "/organizations/{organization_fiscal_code}/logo",
    operation_id="uploadOrganizationLogo",
    status_code=202,
    response_class=Response,
    responses={**problem_responses(400, 401, 403, 429), 202: {"description": "Logo accepted."}},
    openapi_extra={
        "x-civio-body-title": "Invalid Logo",
        "x-civio-param-titles": {"organization_fiscal_code": "Invalid OrganizationFiscalCode"},
    },
)
async def upload_organization_logo(
    request: Request,
    organization_fiscal_code: Annotated[str, Path(pattern=ORGANIZATION_FISCAL_CODE_PATTERN)],
    logo: Logo,
    caller: Annotated[Caller, Depends(require_groups("ApiServiceWrite"))],
) -> Response:
    """Store the organization's logo (a base64 PNG)."""
    check_cidr(caller)
    if caller.service.organization_fiscal_code != organization_fiscal_code:
        # Stricter than IO: a service may only change its own organization's logo.
        raise forbidden("You can only upload the logo of your own organization")
    png = decode_png(logo.logo)
    async with get_runtime(request).sessions() as session, session.begin():
        await session.execute(
            insert(OrganizationLogo)
            .values(organization_fiscal_code=organization_fiscal_code, png=png)
            .on_conflict_do_update(index_elements=["organization_fiscal_code"], set_={"png": png})
        )
    return Response(status_code=202)
