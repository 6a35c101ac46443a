"""Only published services are in the public catalogue, and unpublishing is immediate."""

from __future__ import annotations

import uuid

import httpx

from tests.factories import ADMIN, Factory
from tests.services.manage_support import MANAGE, approve, approved, create, manager, submit


async def catalogue_ids(client: httpx.AsyncClient, search: str) -> list[str]:
    response = await client.get("/api/catalog/v1/services", params={"search": search})
    assert response.status_code == 200
    return [s["id"] for s in response.json()["services"]]


async def test_the_catalogue_shows_published_services_only(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    tag = uuid.uuid4().hex[:10]
    draft = (await create(client, who, name=f"Bozza {tag}"))["id"]
    waiting = (await create(client, who, name=f"Attesa {tag}"))["id"]
    await submit(client, who, waiting, auto_publish=True)
    quiet = (await approved(client, who, name=f"Approvato {tag}"))["id"]
    live = (await approved(client, who, auto_publish=True, name=f"Pubblicato {tag}"))["id"]

    assert await catalogue_ids(client, tag) == [live]
    for hidden in (draft, waiting, quiet):
        assert (await client.get(f"/api/catalog/v1/services/{hidden}")).status_code == 404
    card = (await client.get(f"/api/catalog/v1/services/{live}")).json()
    assert card["name"] == f"Pubblicato {tag}"
    assert card["description"].startswith("Tessera elettorale")
    assert card["metadata"]["scope"] == "LOCAL"
    assert card["metadata"]["privacy_url"] == "https://comune.example.it/privacy"

    # Publishing the approved one adds it; unpublishing the first removes it at once.
    assert (
        await client.post(f"{MANAGE}/services/{quiet}/release", headers=who.headers)
    ).status_code == 204
    assert sorted(await catalogue_ids(client, tag)) == sorted([live, quiet])
    assert (
        await client.delete(f"{MANAGE}/services/{live}/release", headers=who.headers)
    ).status_code == 204
    assert await catalogue_ids(client, tag) == [quiet]
    assert (await client.get(f"/api/catalog/v1/services/{live}")).status_code == 404
    # Deleting a published service takes it out as well.
    assert (
        await client.delete(f"{MANAGE}/services/{quiet}", headers=who.headers)
    ).status_code == 204
    assert await catalogue_ids(client, tag) == []


async def test_an_operator_cannot_show_a_service_never_approved(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    tag = uuid.uuid4().hex[:10]
    sid = (await create(client, who, name=f"Bozza {tag}"))["id"]
    response = await client.patch(
        f"/admin/v1/services/{sid}", json={"visible": True}, headers=ADMIN
    )
    assert response.status_code == 409
    assert await catalogue_ids(client, tag) == []


async def test_an_operator_toggle_of_a_released_service_is_in_its_history(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    sid = (await approved(client, who, auto_publish=True))["id"]
    hidden = await client.patch(f"/admin/v1/services/{sid}", json={"visible": False}, headers=ADMIN)
    assert hidden.status_code == 200
    release = (await client.get(f"{MANAGE}/services/{sid}/release", headers=who.headers)).json()
    assert release["status"] == "unpublished"
    latest = (await client.get(f"{MANAGE}/services/{sid}/history", headers=who.headers)).json()
    assert latest["items"][0]["status"] == {"kind": "publication", "value": "unpublished"}
    assert (await approve(client, sid)).status_code == 409
