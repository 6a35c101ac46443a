"""``/api/catalog/v1``: the public catalogue of visible services and their institutions.

Paths, parameters, limits and shapes follow IO's services app backend
(``pagopa/io-services-cms`` ``apps/app-backend``); IO puts it behind the app's session, civio
serves it without authentication because it only shows what senders chose to publish.
``GET /services`` has no IO counterpart (IO's app searches institutions, then their
services); it uses the same paging and IO's ``FeaturedService`` item.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.ext.asyncio import AsyncSession

from civio.catalog import repository
from civio.catalog.schemas import (
    InstitutionServicesResource,
    InstitutionsResource,
    Scope,
    ServiceDetails,
    ServicesResource,
)
from civio.core.problems import Problem, problem_responses
from civio.core.runtime import session_dependency
from civio.core.types import ORGANIZATION_FISCAL_CODE_PATTERN

router = APIRouter(
    prefix="/api/catalog/v1", tags=["catalog"], responses=problem_responses(400, 500)
)
Session = Annotated[AsyncSession, Depends(session_dependency)]

# IO's defaults and bounds; IO documents 100,000 as the largest offset (Azure Search's skip
# limit), which also keeps PostgreSQL from walking arbitrarily far for an OFFSET.
Limit = Annotated[int, Query(ge=1, le=100, description="Number of results to return (1..100).")]
Offset = Annotated[
    int, Query(ge=0, le=100_000, description="Number of results to skip (0..100000).")
]
Search = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=100,
        description="Words that must all occur, ignoring case and accents.",
    ),
]
ScopeFilter = Annotated[Scope | None, Query(description="Only NATIONAL or only LOCAL.")]


def _titles(*names: str) -> dict[str, Any]:
    """IO's wording for a bad query parameter (its ``OptionalQueryParamMiddleware``)."""
    titles = {name: f"Invalid '{name}' supplied in request query" for name in names}
    titles["organization_fiscal_code"] = "Invalid OrganizationFiscalCode"
    return {"x-civio-param-titles": titles}


@router.get(
    "/services",
    operation_id="findServices",
    response_model=ServicesResource,
    openapi_extra=_titles("limit", "offset", "scope", "search"),
)
async def find_services(
    session: Session,
    search: Search = None,
    scope: ScopeFilter = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> ServicesResource:
    """Visible services, by name: the catalogue across institutions."""
    count, services = await repository.list_services(
        session,
        limit=limit,
        offset=offset,
        scope=scope,
        terms=repository.search_terms(search),
    )
    return ServicesResource(services=services, count=count, limit=limit, offset=offset)


@router.get(
    "/services/{service_id}",
    operation_id="getServiceById",
    response_model=ServiceDetails,
    response_model_exclude_none=True,
    responses=problem_responses(404),
)
async def get_service_by_id(
    session: Session, service_id: Annotated[str, Path(min_length=1)]
) -> ServiceDetails:
    """A visible service's public card; a hidden service is indistinguishable from none."""
    details = await repository.get_service(session, service_id)
    if details is None:
        raise Problem(404, "Service not found", f"Service '{service_id}' not found")
    return details


@router.get(
    "/institutions",
    operation_id="findInstitutions",
    response_model=InstitutionsResource,
    openapi_extra=_titles("limit", "offset", "scope", "search"),
)
async def find_institutions(
    session: Session,
    search: Search = None,
    scope: ScopeFilter = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> InstitutionsResource:
    """Organizations with at least one visible service (with ``scope``: one of that scope)."""
    count, institutions = await repository.list_institutions(
        session,
        limit=limit,
        offset=offset,
        scope=scope,
        terms=repository.search_terms(search),
    )
    return InstitutionsResource(institutions=institutions, count=count, limit=limit, offset=offset)


@router.get(
    "/institutions/{organization_fiscal_code}/services",
    operation_id="findInstitutionServices",
    response_model=InstitutionServicesResource,
    openapi_extra=_titles("limit", "offset"),
)
async def find_institution_services(
    session: Session,
    organization_fiscal_code: Annotated[
        str, Path(pattern=ORGANIZATION_FISCAL_CODE_PATTERN, description="11 digits.")
    ],
    limit: Limit = 20,
    offset: Offset = 0,
) -> InstitutionServicesResource:
    """An institution's visible services. An unknown institution is an empty page, as in IO
    (a filtered search there), so this cannot be used to probe which organizations exist."""
    count, services = await repository.list_institution_services(
        session, organization_fiscal_code, limit=limit, offset=offset
    )
    return InstitutionServicesResource(services=services, count=count, limit=limit, offset=offset)
