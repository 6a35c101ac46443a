"""The management API's keys, logo and history."""

from __future__ import annotations

import base64
import io
import struct
import uuid
import zlib

import httpx
from PIL import Image
from sqlalchemy import select

from civio.core.config import Settings
from civio.services.manage_models import ServiceLogo
from tests.factories import ADMIN, Factory, valid_message
from tests.services.manage_support import (
    MANAGE,
    assert_conforms,
    create,
    manager,
    payload,
    png,
)


async def test_keys_are_readable_and_send_from_the_first_draft(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    who = await manager(factory)
    sid = (await create(client, who))["id"]
    keys = await client.get(f"{MANAGE}/services/{sid}/keys", headers=who.headers)
    assert keys.status_code == 200
    assert_conforms(keys.json(), "CmsSubscriptionKeys")
    primary, secondary = keys.json()["primary_key"], keys.json()["secondary_key"]
    # A draft sends (sandbox groups: the sandbox fiscal code is an authorized recipient).
    sent = await client.post(
        f"/api/v1/messages/{settings.sandbox_fiscal_code}",
        json=valid_message(),
        headers={"Ocp-Apim-Subscription-Key": primary},
    )
    assert sent.status_code == 201, sent.text

    renewed = await client.put(f"{MANAGE}/services/{sid}/keys/primary", headers=who.headers)
    assert renewed.status_code == 200
    assert_conforms(renewed.json(), "CmsSubscriptionKeys")
    assert renewed.json()["primary_key"] != primary
    assert renewed.json()["secondary_key"] == secondary
    shown = (await client.get(f"{MANAGE}/services/{sid}/keys", headers=who.headers)).json()
    assert shown == renewed.json()
    old = await client.post(
        f"/api/v1/messages/{settings.sandbox_fiscal_code}",
        json=valid_message(),
        headers={"Ocp-Apim-Subscription-Key": primary},
    )
    assert old.status_code == 401
    bad = await client.put(f"{MANAGE}/services/{sid}/keys/tertiary", headers=who.headers)
    assert bad.status_code == 400
    assert_conforms(bad.json(), "ProblemJson")


async def test_operator_keys_become_readable_once_regenerated(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    email = f"ente-{uuid.uuid4().hex[:12]}@example.it"
    sender = await factory.sender(owner_email=email)
    who = await manager(factory, email=email)
    url = f"{MANAGE}/services/{sender.service_id}/keys"
    assert (await client.get(url, headers=who.headers)).status_code == 409
    renewed = await client.put(f"{url}/secondary", headers=who.headers)
    assert renewed.status_code == 200
    assert_conforms(renewed.json(), "CmsSubscriptionKeys")
    assert (await client.get(url, headers=who.headers)).json() == renewed.json()
    assert renewed.json()["primary_key"] != sender.key


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header announcing a canvas of that size, without its pixels (a small file that
    would expand into gigabytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


async def test_a_logo_must_be_a_png_and_is_stored_resized(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    sid = (await create(client, who))["id"]
    url = f"{MANAGE}/services/{sid}/logo"
    jpeg = io.BytesIO()
    Image.new("RGB", (10, 10)).save(jpeg, format="JPEG")
    for body in (
        {"logo": base64.b64encode(jpeg.getvalue()).decode()},
        {"logo": base64.b64encode(png_claiming(100_000, 100_000)).decode()},
        {"logo": base64.b64encode(b"\x89PNG\r\n\x1a\n not really a png").decode()},
        {"logo": "not base64 !"},
        {"logo": ""},
        {},
    ):
        response = await client.put(url, json=body, headers=who.headers)
        assert response.status_code == 400, body
        assert_conforms(response.json(), "ProblemJson")
    async with factory.runtime.sessions() as session:
        assert await session.get(ServiceLogo, sid) is None

    uploaded = await client.put(
        url, json={"logo": base64.b64encode(png(900, 600)).decode()}, headers=who.headers
    )
    assert uploaded.status_code == 204
    assert uploaded.content == b""
    async with factory.runtime.sessions() as session:
        stored = await session.scalar(select(ServiceLogo.png).where(ServiceLogo.service_id == sid))
    assert stored is not None
    image = Image.open(io.BytesIO(stored))
    assert image.format == "PNG"
    assert image.size == (300, 200)


async def test_history_pages_with_a_continuation_token(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    sid = (await create(client, who, name="Versione 0"))["id"]
    url = f"{MANAGE}/services/{sid}"
    for n in range(1, 5):
        edited = await client.put(url, json=payload(name=f"Versione {n}"), headers=who.headers)
        assert edited.status_code == 200

    def names(page: dict[str, object]) -> list[str]:
        return [item["name"] for item in page["items"]]  # type: ignore[attr-defined, index]

    default = (await client.get(f"{url}/history", headers=who.headers)).json()
    assert names(default) == [f"Versione {n}" for n in (4, 3, 2, 1, 0)]
    assert "continuationToken" not in default

    seen: list[str] = []
    query = "limit=2"
    while True:
        response = await client.get(f"{url}/history?{query}", headers=who.headers)
        assert response.status_code == 200
        page = response.json()
        assert_conforms(page, "CmsServiceHistory")
        seen += names(page)
        if "continuationToken" not in page:
            break
        query = f"limit=2&continuationToken={page['continuationToken']}"
    assert seen == names(default)

    ascending = (await client.get(f"{url}/history?order=ASC&limit=3", headers=who.headers)).json()
    assert names(ascending) == ["Versione 0", "Versione 1", "Versione 2"]
    following = await client.get(
        f"{url}/history?order=ASC&continuationToken={ascending['continuationToken']}",
        headers=who.headers,
    )
    assert names(following.json()) == ["Versione 3", "Versione 4"]

    huge = base64.urlsafe_b64encode(b"h" + b"9" * 30).decode()
    for query in (
        "continuationToken=garbage",
        f"continuationToken={huge}",
        "limit=0",
        "limit=101",
        "order=SIDEWAYS",
    ):
        response = await client.get(f"{url}/history?{query}", headers=who.headers)
        assert response.status_code == 400, query
        assert_conforms(response.json(), "ProblemJson")


async def test_keys_the_operator_generates_are_readable_and_never_stale(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    sid = (await create(client, who))["id"]
    renewed = await client.put(f"/admin/v1/services/{sid}/keys/primary", headers=ADMIN)
    assert renewed.status_code == 200
    shown = (await client.get(f"{MANAGE}/services/{sid}/keys", headers=who.headers)).json()
    assert shown["primary_key"] == renewed.json()["primary_key"]

    email = f"ente-{uuid.uuid4().hex[:12]}@example.it"
    owner = await manager(factory, email=email)
    created = await client.post(
        "/admin/v1/services",
        json={
            "name": "Tributi",
            "organization_name": "Comune di Prova",
            "organization_fiscal_code": "01234567890",
            "owner_email": email,
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    keys = await client.get(
        f"{MANAGE}/services/{created.json()['service_id']}/keys", headers=owner.headers
    )
    assert keys.json() == {
        "primary_key": created.json()["primary_key"],
        "secondary_key": created.json()["secondary_key"],
    }


async def test_messages_flow_whatever_the_lifecycle(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    who = await manager(factory)
    sid = (await create(client, who))["id"]
    keys = (await client.get(f"{MANAGE}/services/{sid}/keys", headers=who.headers)).json()
    headers = {"Ocp-Apim-Subscription-Key": keys["primary_key"]}
    await client.put(
        f"{MANAGE}/services/{sid}/review", json={"auto_publish": False}, headers=who.headers
    )
    rejected = await client.post(f"/admin/v1/services/{sid}/reject", headers=ADMIN)
    assert rejected.json()["status"]["value"] == "rejected"
    assert (await client.delete(f"{MANAGE}/services/{sid}", headers=who.headers)).status_code == 204
    sent = await client.post(
        f"/api/v1/messages/{settings.sandbox_fiscal_code}",
        json=valid_message(),
        headers=headers,
    )
    assert sent.status_code == 201, sent.text
