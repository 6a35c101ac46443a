"""IO's own ``/manage`` operations, generated from IO's ``pa-api.yaml`` by schemathesis and
sent to civio with a manage key: no answer is a 5xx, and every answer whose status IO
documents with a schema validates against that schema."""

from __future__ import annotations

import random
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.schemas import APIOperation

from tests.factories import Factory
from tests.services.manage_support import IO_SPEC, assert_conforms, create, manager

EXAMPLES = 12
JSON = (dict, list, str, int, float, bool)


def manage_operations() -> list[APIOperation]:
    schema = schemathesis.openapi.from_path(str(IO_SPEC))
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if op.path.startswith("/manage/")]


def cases_of(operation: APIOperation) -> list[Any]:
    cases: list[Any] = []

    @given(operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def collect(case: Any) -> None:
        cases.append(case)

    collect()
    return cases


def documented_schema(operation: APIOperation, status: int) -> str | None:
    response = operation.definition.raw.get("responses", {}).get(str(status))
    ref = (response or {}).get("schema", {}).get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def test_the_spec_has_the_manage_operations() -> None:
    ids = {op.definition.raw["operationId"] for op in manage_operations()}
    assert "cmsCreateService" in ids
    assert "cmsReviewService" in ids
    assert len(ids) == 14


async def test_ios_manage_operations_get_conforming_answers(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    rng = random.Random(11)
    failures: list[str] = []
    for operation in manage_operations():
        # An owner per operation: each has its own rate-limit window (150 calls / 5 s).
        who = await manager(factory)
        own = (await create(client, who))["id"]
        for case in cases_of(operation):
            path_parameters = dict(case.path_parameters or {})
            if "serviceId" in path_parameters and rng.random() < 0.6:
                path_parameters["serviceId"] = own
            path = operation.path.format(**path_parameters) if path_parameters else operation.path
            body = {"json": case.body} if isinstance(case.body, JSON) else {}
            response = await client.request(
                operation.method.upper(),
                f"/api/v1{path}",
                params=case.query or None,
                headers=who.headers,
                **body,
            )
            label = f"{operation.method.upper()} {path} {case.query} {case.body!r:.120}"
            if response.status_code >= 500:
                failures.append(f"{label}: {response.status_code} {response.text[:200]}")
                continue
            definition = documented_schema(operation, response.status_code)
            if definition is not None:
                try:
                    assert_conforms(response.json(), definition)
                except AssertionError as exc:
                    failures.append(f"{label}: {exc}")
    assert not failures, "\n".join(failures[:20])
