"""Wire shapes of the public catalogue, named and shaped as IO's services app backend
(``pagopa/io-services-cms`` ``apps/app-backend/api/external.yaml``, ``/api/catalog/v1``).

These models are built field by field from whitelisted columns: nothing here may ever carry
keys, authorized recipients, CIDRs, groups, owners or payment limits, so a new column on
``services`` cannot leak through the catalogue by accident.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Scope = Literal["NATIONAL", "LOCAL"]
Category = Literal["STANDARD", "SPECIAL"]


class PaginationResultSet(BaseModel):
    offset: int = Field(description="Result set offset.")
    limit: int = Field(description="Result set size.")
    count: int = Field(description="Total record count.")


class ServiceMinified(BaseModel):
    id: str = Field(description="Service ID.")
    name: str = Field(description="Service name.")
    version: int = Field(description="Service version.")


class CatalogService(ServiceMinified):
    """IO's ``FeaturedService``: the minified service plus who provides it, because a
    list across institutions is unreadable without the organization's name."""

    organization_name: str = Field(description="Organization name.")


class ServicesResource(PaginationResultSet):
    services: list[CatalogService]


class InstitutionServicesResource(PaginationResultSet):
    services: list[ServiceMinified]


class Institution(BaseModel):
    id: str = Field(description="Institution ID (its organization fiscal code).")
    name: str = Field(description="Institution name.")
    fiscal_code: str = Field(description="Organization fiscal code (11 digits).")


class InstitutionsResource(PaginationResultSet):
    institutions: list[Institution]


class Organization(BaseModel):
    name: str
    fiscal_code: str


class CatalogServiceMetadata(BaseModel):
    """IO's ``ServiceMetadata`` (standard or special); unset fields are omitted. Named apart
    from the operators' ``ServiceMetadata``: both land in one OpenAPI components map."""

    scope: Scope
    category: Category
    web_url: str | None = None
    app_ios: str | None = None
    app_android: str | None = None
    tos_url: str | None = None
    privacy_url: str | None = None
    address: str | None = None
    phone: str | None = None
    email: str | None = None
    pec: str | None = None
    cta: str | None = None
    token_name: str | None = None
    support_url: str | None = None
    custom_special_flow: str | None = None


class ServiceDetails(BaseModel):
    id: str = Field(description="Service ID.")
    name: str = Field(description="Service name.")
    description: str = Field(description="Service description (empty when none was given).")
    organization: Organization
    metadata: CatalogServiceMetadata
