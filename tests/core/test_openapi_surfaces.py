"""What the app documents and to whom: one OpenAPI document and one Swagger UI per surface,
nothing combined, the admin document only with the admin token, no asset from a CDN, and
``/metrics`` behind a token when one is set."""

from __future__ import annotations

import re

import httpx
import pytest

from civio.app import ADMIN_PREFIX, SURFACES
from civio.core.config import Settings
from civio.core.runtime import Runtime
from tests.factories import ADMIN, client_with
from tests.messages.test_submit import assert_problem

PUBLIC_SURFACES = [prefix for prefix in SURFACES if prefix != ADMIN_PREFIX]
# Any absolute or protocol-relative URL: a page that names one loads from another host.
ABSOLUTE_URL = re.compile(rb"""(?:[a-z][a-z0-9+.-]*:)?//[^\s"'<>)]+""", re.IGNORECASE)


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_the_combined_app_serves_no_document(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path), 404)


@pytest.mark.parametrize("prefix", PUBLIC_SURFACES)
async def test_each_surface_documents_only_its_own_paths(
    client: httpx.AsyncClient, prefix: str
) -> None:
    response = await client.get(f"{prefix}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["servers"] == [{"url": prefix}]
    assert document["paths"]
    others = [p for p in SURFACES if p != prefix and not p.startswith(prefix + "/")]
    text = str(document["paths"])
    assert not any(other in text for other in others)


async def test_the_admin_document_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{ADMIN_PREFIX}/openapi.json"), 401)
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    assert_problem(await client.get(f"{ADMIN_PREFIX}/openapi.json", headers=wrong), 401)
    document = (await client.get(f"{ADMIN_PREFIX}/openapi.json", headers=ADMIN)).json()
    assert document["servers"] == [{"url": ADMIN_PREFIX}]
    assert "/services" in document["paths"]


@pytest.mark.parametrize("prefix", PUBLIC_SURFACES)
async def test_swagger_ui_of_each_surface_loads_nothing_from_another_host(
    client: httpx.AsyncClient, prefix: str
) -> None:
    page = await client.get(f"{prefix}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.content
    assert ABSOLUTE_URL.findall(html) == []
    assert f"'{prefix}/openapi.json'".encode() in html
    assets = re.findall(rb"""(?:src|href)="([^"]+)\"""", html)
    assert len(assets) == 3  # the script, the stylesheet and the icon
    types = set()
    for asset in assets:
        response = await client.get(asset.decode())
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
        types.add(response.headers["content-type"].split(";")[0])
    # Served with nosniff, so each needs its true type for the browser to use it.
    assert types == {"text/javascript", "text/css", "image/png"}


async def test_swagger_ui_turns_off_the_online_validator(client: httpx.AsyncClient) -> None:
    # Swagger UI otherwise sends the document's URL to validator.swagger.io from the browser.
    html = (await client.get("/api/v1/docs")).text
    assert '"validatorUrl": null' in html


async def test_metrics_need_the_metrics_token_when_one_is_set(
    settings: Settings, runtime: Runtime
) -> None:
    guarded = settings.model_copy(update={"metrics_token": "a-metrics-token-of-some-length"})
    async with client_with(guarded, runtime) as client:
        missing = await client.get("/metrics")
        assert_problem(missing, 401)
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert_problem(wrong, 401)
        right = await client.get(
            "/metrics", headers={"Authorization": "Bearer a-metrics-token-of-some-length"}
        )
        assert right.status_code == 200
        assert "civio_http_requests_total" in right.text
        # Probes stay open: orchestrators call them without credentials.
        assert (await client.get("/healthz")).status_code == 200


async def test_metrics_are_open_when_no_token_is_set(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200
