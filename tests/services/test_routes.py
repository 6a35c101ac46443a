"""Organization logo (PA API) and the operators' admin API."""

from __future__ import annotations

import base64

import httpx

from tests.factories import ADMIN, Factory
from tests.messages.test_submit import assert_problem

PNG = base64.b64encode(
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
).decode()


async def test_logo_upload(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender(groups=["ApiServiceWrite"])
    url = f"/api/v1/organizations/{sender.organization_fiscal_code}/logo"
    empty = await client.put(url, json={}, headers=sender.headers)
    assert_problem(empty, 400, "Invalid Logo")
    not_png = await client.put(
        url, json={"logo": base64.b64encode(b"GIF89a").decode()}, headers=sender.headers
    )
    assert_problem(not_png, 400, "Invalid Logo")
    ok = await client.put(url, json={"logo": PNG}, headers=sender.headers)
    assert ok.status_code == 202
    assert ok.content == b""


async def test_logo_of_another_organization_is_forbidden(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender(groups=["ApiServiceWrite"])
    response = await client.put(
        "/api/v1/organizations/99999999999/logo", json={"logo": PNG}, headers=sender.headers
    )
    assert_problem(response, 403)


async def test_logo_needs_service_write(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    response = await client.put(
        f"/api/v1/organizations/{sender.organization_fiscal_code}/logo",
        json={"logo": PNG},
        headers=sender.headers,
    )
    assert_problem(response, 403, "You are not allowed here")


async def test_admin_api_requires_the_token(client: httpx.AsyncClient) -> None:
    payload = {
        "name": "X",
        "organization_name": "Y",
        "organization_fiscal_code": "12345678901",
    }
    assert (await client.post("/admin/v1/services", json=payload)).status_code == 401
    wrong = await client.post(
        "/admin/v1/services", json=payload, headers={"Authorization": "Bearer nope"}
    )
    assert_problem(wrong, 401)


async def test_admin_api_provisions_a_working_service(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/admin/v1/services",
        json={
            "name": "Tributi",
            "organization_name": "Comune di Prova",
            "organization_fiscal_code": "12345678901",
            "authorized_recipients": ["BBBBBB00A00A000B"],
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    service = created.json()
    assert service["groups"] == [
        "ApiLimitedMessageWrite",
        "ApiInfoRead",
        "ApiMessageRead",
        "ApiLimitedProfileRead",
    ]
    assert service["authorized_recipients"] == ["AAAAAA00A00A000A", "BBBBBB00A00A000B"]
    assert service["service_metadata"]["scope"] == "NATIONAL"
    assert len(service["primary_key"]) >= 64
    assert service["primary_key"] != service["secondary_key"]
    assert service["owner_email"].endswith("@localhost")
    sid = service["service_id"]

    shown = await client.get(f"/admin/v1/services/{sid}", headers=ADMIN)
    assert "primary_key" not in shown.json()

    granted = await client.post(
        f"/admin/v1/services/{sid}/groups", json={"groups": ["ApiMessageWrite"]}, headers=ADMIN
    )
    assert "ApiMessageWrite" in granted.json()["groups"]
    unknown = await client.post(
        f"/admin/v1/services/{sid}/groups", json={"groups": ["ApiEverything"]}, headers=ADMIN
    )
    assert_problem(unknown, 400, "Invalid groups")

    updated = await client.patch(
        f"/admin/v1/services/{sid}",
        json={"max_allowed_payment_amount": 5000, "special": True},
        headers=ADMIN,
    )
    assert updated.json()["max_allowed_payment_amount"] == 5000
    assert updated.json()["service_metadata"]["category"] == "SPECIAL"
    assert updated.json()["version"] == 2

    key = await client.put(f"/admin/v1/services/{sid}/keys/secondary", headers=ADMIN)
    assert set(key.json()) >= {"secondary_key"}
    assert "primary_key" not in key.json()
    response = await client.get(
        "/api/v1/profiles/BBBBBB00A00A000B",
        headers={"Ocp-Apim-Subscription-Key": key.json()["secondary_key"]},
    )
    assert response.status_code == 404  # authenticated; the citizen simply does not exist


async def test_admin_unknown_service_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/v1/services/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=ADMIN)
    assert_problem(response, 404, "Service not found")
