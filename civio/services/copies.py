"""The two copies of a managed service and the mapping between them (IO's CMS → service).

The working copy is IO's ``CmsServiceData`` plus ``metadata`` with ``topic_id``, as the owner
sent it; the live row is ``services``, what the gateway, the pipeline and the catalogue
read. ``apply_to_live`` is IO's mapping: name → service_name, description →
service_metadata.description, organization.* → organization_name, organization_fiscal_code
and department_name, require_secure_channel → require_secure_channels; published ⇔ visible.
"""

from __future__ import annotations

import copy
from typing import Any

from civio.services import topics
from civio.services.lifecycle import PublicationStatus
from civio.services.manage_schemas import CmsServicePayload, service_data
from civio.services.models import Service
from civio.services.schemas import shown_metadata

# Metadata only an operator sets on the live row; a release keeps them.
OPERATOR_METADATA = ("category", "custom_special_flow")


def working_copy(payload: CmsServicePayload, sandbox_fiscal_code: str) -> dict[str, Any]:
    """The payload as stored: the sandbox fiscal code always among the recipients (IO)."""
    data = payload.model_dump(exclude_none=True)
    data["authorized_recipients"] = list(
        dict.fromkeys([sandbox_fiscal_code, *payload.authorized_recipients])
    )
    return data


def derived_copy(service: Service) -> dict[str, Any]:
    """The live row in the CMS shape (for a service without a working copy, and for the
    released version ``GET …/release`` shows)."""
    stored = service.service_metadata or {}
    metadata: dict[str, Any] = {"scope": "LOCAL" if stored.get("scope") == "LOCAL" else "NATIONAL"}
    if isinstance(stored.get("topic_id"), int):
        metadata["topic_id"] = stored["topic_id"]
    metadata |= shown_metadata(stored)
    description = stored.get("description")
    organization: dict[str, Any] = {
        "name": service.organization_name,
        "fiscal_code": service.organization_fiscal_code,
    }
    if service.department_name:
        organization["department_name"] = service.department_name
    return {
        "name": service.service_name,
        "description": description if isinstance(description, str) and description else "-",
        "organization": organization,
        "require_secure_channel": service.require_secure_channels,
        "authorized_recipients": list(service.authorized_recipients),
        "authorized_cidrs": list(service.authorized_cidrs),
        "max_allowed_payment_amount": service.max_allowed_payment_amount,
        "metadata": metadata,
    }


def apply_to_live(service: Service, data: dict[str, Any]) -> None:
    """IO's CMS → service mapping: name → service_name, description →
    service_metadata.description, organization.*, require_secure_channel →
    require_secure_channels; the operator's category stays as it was."""
    organization = data["organization"]
    metadata = dict(data["metadata"])
    kept = {k: v for k, v in (service.service_metadata or {}).items() if k in OPERATOR_METADATA}
    service.service_name = data["name"]
    service.organization_name = organization["name"]
    service.organization_fiscal_code = organization["fiscal_code"]
    service.department_name = organization.get("department_name") or "-"
    service.require_secure_channels = data["require_secure_channel"]
    service.authorized_recipients = list(data["authorized_recipients"])
    service.authorized_cidrs = list(data["authorized_cidrs"])
    service.max_allowed_payment_amount = data["max_allowed_payment_amount"]
    service.service_metadata = {
        "category": "STANDARD",
        **kept,
        **metadata,
        "description": data["description"],
    }
    service.category = service.service_metadata["category"]
    service.version += 1


def metadata_out(metadata: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in metadata.items() if k != "topic_id"}
    topic = topics.topic(metadata.get("topic_id"))
    if topic is not None:
        shown["topic"] = topic.model_dump()
    return shown


def data_out(data: dict[str, Any]) -> dict[str, Any]:
    shown = copy.deepcopy(service_data(data))
    shown["metadata"] = metadata_out(shown.get("metadata", {"scope": "NATIONAL"}))
    return shown


def publication_of(service: Service) -> PublicationStatus:
    return "published" if service.is_visible else "unpublished"
