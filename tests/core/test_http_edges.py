"""Bad input gets a clear 4xx problem, never a 500; operations endpoints answer; the edge
bounds request heads, refuses keyless uploads early and marks every response."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from civio.core.config import Settings
from tests.e2e.test_proxy_headers import serving
from tests.factories import ADMIN, Factory, login, random_fiscal_code, valid_message
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


# --- over a real socket ------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_url(settings: Settings) -> Iterator[str]:
    with serving(settings) as url:
        yield url


def exchange(url: str, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send a raw request on a fresh connection; read one response (status, headers, body)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as connection:
        # A server refusing a request may close before all of it is sent; its answer is
        # still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
        raw_head, _, rest = received.partition(b"\r\n\r\n")
        status_line, *lines = raw_head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines)}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = connection.recv(65536)
            assert chunk
            rest += chunk
    return int(status_line.split()[1]), headers, rest


def request_head(path: str, *header_lines: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: civio.test", *header_lines, "", ""]
    return "\r\n".join(lines).encode()


def test_a_pa_upload_without_a_key_is_refused_before_its_body_arrives(live_url: str) -> None:
    # The body is announced and never sent: only an answer that does not wait for it arrives.
    head = request_head(
        f"/api/v1/messages/{random_fiscal_code()}",
        "Content-Type: application/json",
        "Content-Length: 1000000",
        method="POST",
    )
    status, headers, body = exchange(live_url, head)
    assert status == 401
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["title"] == "Access denied"


def test_more_than_a_hundred_header_fields_get_431(live_url: str) -> None:
    lines = [f"X-Filler-{i}: value" for i in range(101)]
    status, headers, body = exchange(live_url, request_head("/healthz", *lines))
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["status"] == 431
    # A hundred are fine.
    assert exchange(live_url, request_head("/healthz", *lines[:98]))[0] == 200


@pytest.mark.parametrize("size", [70 * 1024, 4 * 1024 * 1024])
def test_a_request_head_over_64_kib_gets_431(live_url: str, size: int) -> None:
    status, _, body = exchange(live_url, request_head("/healthz", f"X-Big: {'a' * size}"))
    assert status == 431
    assert json.loads(body)["title"] == "Request header fields too large"


async def test_a_large_body_is_not_mistaken_for_a_large_head(
    live_url: str, factory: Factory
) -> None:
    sender = await factory.sender()
    body = json.dumps(valid_message(markdown="x" * 900_000)).encode()
    head = request_head(
        f"/api/v1/messages/{random_fiscal_code()}",
        f"Ocp-Apim-Subscription-Key: {sender.key}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        method="POST",
    )
    status, _, answer = exchange(live_url, head, body)
    assert status == 400, answer  # the markdown is too long for IO, but the body was read
    async with httpx.AsyncClient(base_url=live_url) as client:  # and keep-alive still works
        for _ in range(3):
            response = await client.post(
                f"/api/v1/messages/{random_fiscal_code()}",
                json=valid_message(),
                headers=sender.headers,
            )
            assert response.status_code == 201


# --- response headers --------------------------------------------------------------------


async def test_every_response_says_nosniff(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    responses = [
        await client.get("/healthz"),
        await client.get("/api/v1/nothing-here"),
        await client.get(f"/api/v1/profiles/{random_fiscal_code()}"),
        await client.post(f"/api/v1/messages/{random_fiscal_code()}", json={}),
        await client.post(
            f"/api/v1/messages/{random_fiscal_code()}",
            content=b"x" * (1024 * 1024 + 1),
            headers=sender.headers,
        ),
        await client.get("/api/v1/docs"),
    ]
    assert [r.status_code for r in responses] == [200, 404, 401, 401, 413, 200]
    assert all(r.headers["x-content-type-options"] == "nosniff" for r in responses)


async def test_answers_with_tokens_or_personal_data_are_never_stored(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    sender = await factory.sender(groups=["ApiMessageWrite", "ApiLimitedProfileRead"])
    fiscal_code, citizen = await login(client, settings)
    created = await client.post(
        "/admin/v1/services",
        json={
            "name": "A service",
            "organization_name": "Comune di Prova",
            "organization_fiscal_code": "12345678901",
        },
        headers=ADMIN,
    )
    assert created.status_code == 201
    answers = [
        created,  # its subscription keys
        await client.post(
            "/api/auth/v1/test-login",
            json={"username": fiscal_code, "password": settings.test_login_password},
        ),
        await client.get("/api/identity/v1/profile", headers=citizen),
        await client.get("/api/communication/v1/messages", headers=citizen),
        await client.get(f"/api/v1/profiles/{fiscal_code}", headers=sender.headers),
    ]
    for answer in answers:
        assert answer.status_code < 500, answer.text
        assert answer.headers.get_list("cache-control") == ["no-store"], answer.request.url
    # The public catalogue stays cacheable.
    catalogue = await client.get("/api/catalog/v1/services")
    assert catalogue.status_code == 200
    assert "no-store" not in catalogue.headers.get("cache-control", "")
