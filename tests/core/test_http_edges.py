"""Bad input gets a clear 4xx problem, never a 500; operations endpoints answer."""

from __future__ import annotations

import httpx

from tests.factories import Factory, random_fiscal_code, valid_message
from tests.messages.test_submit import assert_problem


async def test_malformed_json_is_400(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        content=b'{"content": {"subject": ',
        headers={**sender.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "Invalid JSON")


async def test_wrong_content_type_is_4xx(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        content=b"subject=hello",
        headers={**sender.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    body = valid_message(markdown="x" * (1024 * 1024 + 10))
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}", json=body, headers=sender.headers
    )
    assert_problem(response, 413)


async def test_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"content": {"subject": "A subject here", "markdown": "'
        for _ in range(300):
            yield b"x" * 4096
        yield b'"}}'

    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        content=chunks(),
        headers={**sender.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 413)


async def test_wrong_types_are_400_not_coerced(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    for content in (
        {"subject": 1234567890123, "markdown": "m" * 90},
        {"subject": "A subject here", "markdown": "m" * 90, "require_secure_channels": "yes"},
        [],
    ):
        response = await client.post(
            f"/api/v1/messages/{random_fiscal_code()}",
            json={"content": content},
            headers=sender.headers,
        )
        assert_problem(response, 400, "Invalid message structure")


async def test_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404)


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.get("/healthz")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'civio_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text


async def test_pa_openapi_is_served_relative_to_api_v1(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["servers"] == [{"url": "/api/v1"}]
    operations = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert {
        "submitMessageforUser",
        "submitMessageforUserWithFiscalCodeInBody",
        "getMessage",
        "getProfile",
        "getProfileByPOST",
        "getSubscriptionsFeedForDate",
        "getServiceActivationByPOST",
        "upsertServiceActivation",
        "uploadOrganizationLogo",
    } <= operations
    assert "/admin" not in str(document["paths"])
