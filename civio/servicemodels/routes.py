"""``/api/v1/service-models``: the shipped models, public like the catalogue.

They are civio's own published guidance, the same for every caller, so reading them needs
no key: a body can look at what it would get before it has any service at all.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query

from civio.core.languages import Language
from civio.core.problems import problem_responses
from civio.servicemodels import service
from civio.servicemodels.schemas import (
    SLUG_PATTERN,
    ServiceModel,
    ServiceModelList,
)

router = APIRouter(tags=["service models"], responses=problem_responses(400, 500))


@router.get(
    "/service-models",
    operation_id="listServiceModels",
    response_model=ServiceModelList,
)
async def list_service_models(
    lang: Annotated[
        Language | None,
        Query(description="it, en or de; else from Accept-Language; else it."),
    ] = None,
    accept_language: Annotated[str | None, Header(max_length=500)] = None,
) -> ServiceModelList:
    """Every shipped model: id, topic, name, description, whether it is sensitive, how many
    messages its ideal service has."""
    return service.summaries(lang or service.negotiate(accept_language))


@router.get(
    "/service-models/{model_id}",
    operation_id="getServiceModel",
    response_model=ServiceModel,
    response_model_exclude_none=True,
    responses=problem_responses(404),
)
async def get_service_model(
    model_id: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)],
) -> ServiceModel:
    """One model in full, in every language it has."""
    return service.get(model_id)
