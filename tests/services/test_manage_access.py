"""Who may use the management API: an owner's manage key, on that owner's services only."""

from __future__ import annotations

import uuid

import httpx

from civio.core.config import Settings
from civio.core.runtime import Runtime
from tests.factories import Factory, client_with, valid_message
from tests.services.manage_support import MANAGE, assert_conforms, create, manager, payload


async def test_owner_a_cannot_touch_owner_b_services(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    alice, bob = await manager(factory), await manager(factory)
    sid = (await create(client, bob))["id"]
    url = f"{MANAGE}/services/{sid}"
    attempts = [
        ("GET", url, None),
        ("PUT", url, payload()),
        ("DELETE", url, None),
        ("PUT", f"{url}/review", {"auto_publish": True}),
        ("POST", f"{url}/release", None),
        ("GET", f"{url}/release", None),
        ("DELETE", f"{url}/release", None),
        ("GET", f"{url}/history", None),
        ("GET", f"{url}/keys", None),
        ("PUT", f"{url}/keys/primary", None),
        ("PUT", f"{url}/logo", {"logo": "iVBORw0KGgo="}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=alice.headers)
        # IO's serviceOwnerCheckManageTask: another owner's service is 403, not 404.
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["title"] == "You are not allowed here"
    listed = (await client.get(f"{MANAGE}/services", headers=alice.headers)).json()
    assert listed["value"] == []
    # Nothing changed for Bob.
    shown = (await client.get(url, headers=bob.headers)).json()
    assert shown["status"] == {"value": "draft"}


async def test_a_service_key_cannot_manage(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender(groups=["ApiServiceWrite", "ApiMessageWrite"])
    response = await client.get(f"{MANAGE}/services", headers=sender.headers)
    assert response.status_code == 403
    assert response.json()["title"] == "You are not allowed here"
    created = await client.post(f"{MANAGE}/services", json=payload(), headers=sender.headers)
    assert created.status_code == 403
    unknown = await client.get(
        f"{MANAGE}/services", headers={"Ocp-Apim-Subscription-Key": "0" * 64}
    )
    assert unknown.status_code == 401
    assert (await client.get(f"{MANAGE}/services")).status_code == 401


async def test_a_manage_key_is_not_a_service_key(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    who = await manager(factory)
    sent = await client.post(
        f"/api/v1/messages/{settings.sandbox_fiscal_code}",
        json=valid_message(),
        headers=who.headers,
    )
    assert sent.status_code == 401


async def test_both_manage_keys_work(client: httpx.AsyncClient, factory: Factory) -> None:
    who = await manager(factory)
    for key in (who.key, who.secondary_key):
        response = await client.get(
            f"{MANAGE}/services", headers={"Ocp-Apim-Subscription-Key": key}
        )
        assert response.status_code == 200


async def test_the_list_pages_as_io_validates_it(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    ids = [(await create(client, who, name=f"Servizio {n}"))["id"] for n in range(3)]
    everything = await client.get(f"{MANAGE}/services", headers=who.headers)
    assert everything.status_code == 200
    assert_conforms(everything.json(), "CmsServicePagination")
    assert everything.json()["pagination"] == {"offset": 0, "limit": 20, "count": 3}
    assert [s["id"] for s in everything.json()["value"]] == sorted(ids)
    page = (await client.get(f"{MANAGE}/services?limit=2&offset=1", headers=who.headers)).json()
    assert page["pagination"] == {"offset": 1, "limit": 2, "count": 3}
    assert [s["id"] for s in page["value"]] == sorted(ids)[1:]
    assert (await client.get(f"{MANAGE}/services?limit=99", headers=who.headers)).status_code == 200
    for query in ("limit=100", "limit=0", "offset=-1", "limit=ten", f"offset={10**20}"):
        response = await client.get(f"{MANAGE}/services?{query}", headers=who.headers)
        assert response.status_code == 400, query
        assert_conforms(response.json(), "ProblemJson")
        name = query.split("=")[0]
        assert response.json()["title"] == f"Invalid '{name}' supplied in request query"


async def test_operator_services_are_listed_as_approved(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    email = f"ente-{uuid.uuid4().hex[:12]}@example.it"
    sender = await factory.sender(owner_email=email)
    who = await manager(factory, email=email)
    listed = (await client.get(f"{MANAGE}/services", headers=who.headers)).json()
    assert [s["id"] for s in listed["value"]] == [sender.service_id]
    assert_conforms(listed, "CmsServicePagination")
    assert listed["value"][0]["status"] == {"value": "approved"}
    release = await client.get(
        f"{MANAGE}/services/{sender.service_id}/release", headers=who.headers
    )
    assert release.json()["status"] == "unpublished"
    # Its keys were shown once and are kept only as digests.
    keys = await client.get(f"{MANAGE}/services/{sender.service_id}/keys", headers=who.headers)
    assert keys.status_code == 409
    assert_conforms(keys.json(), "ProblemJson")


async def test_topics_are_io_topics(client: httpx.AsyncClient, factory: Factory) -> None:
    who = await manager(factory)
    for path in (f"{MANAGE}/topics", f"{MANAGE}/services/topics"):
        response = await client.get(path, headers=who.headers)
        assert response.status_code == 200
        assert_conforms(response.json(), "CmsServiceTopicList")
        topics = {t["id"]: t["name"] for t in response.json()["topics"]}
        assert len(topics) == 18
        assert topics[0] == "Altro"
        assert topics[12] == "Servizi elettorali"
        assert topics[17] == "Salute"


async def test_a_manage_key_counts_against_its_owner_rate_limit(
    settings: Settings, runtime: Runtime, factory: Factory
) -> None:
    who = await manager(factory)
    tight = settings.model_copy(update={"rate_limit_calls": 2})
    async with client_with(tight, runtime) as client:
        for _ in range(2):
            allowed = await client.get(f"{MANAGE}/services", headers=who.headers)
            assert allowed.status_code == 200
        refused = await client.get(f"{MANAGE}/services", headers=who.headers)
    assert refused.status_code == 429
    assert refused.headers["x-rate-limit-remaining"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1
