"""The management API's state machine over HTTP, with IO's status codes and shapes."""

from __future__ import annotations

import httpx
import pytest

from civio.core.config import Settings
from tests.factories import ADMIN, Factory
from tests.services.manage_support import (
    MANAGE,
    approve,
    approved,
    assert_conforms,
    create,
    manager,
    payload,
    submit,
)


def test_the_validator_catches_a_wrong_shape() -> None:
    with pytest.raises(AssertionError):
        assert_conforms({"id": "x", "status": {"value": "live"}}, "CmsServiceLifecycle")


async def test_the_whole_lifecycle(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    who = await manager(factory)
    created = await create(client, who, max_allowed_payment_amount=500)
    assert_conforms(created, "CmsServiceLifecycle")
    assert created["status"] == {"value": "draft"}
    assert created["metadata"]["topic"] == {"id": 12, "name": "Servizi elettorali"}
    assert settings.sandbox_fiscal_code in created["authorized_recipients"]
    sid = created["id"]
    url = f"{MANAGE}/services/{sid}"

    shown = await client.get(url, headers=who.headers)
    assert shown.status_code == 200
    assert_conforms(shown.json(), "CmsServiceLifecycle")
    edited = await client.put(url, json=payload(name="Elezioni"), headers=who.headers)
    assert edited.status_code == 200
    assert_conforms(edited.json(), "CmsServiceLifecycle")
    assert edited.json()["name"] == "Elezioni"
    assert edited.json()["status"]["value"] == "draft"

    # Nothing was ever approved: there is no released version.
    assert (await client.get(f"{url}/release", headers=who.headers)).status_code == 404
    assert (await client.post(f"{url}/release", headers=who.headers)).status_code == 404

    await submit(client, who, sid, auto_publish=False)
    assert (await client.get(url, headers=who.headers)).json()["status"]["value"] == "submitted"
    # Frozen while under review.
    again = await client.put(f"{url}/review", json={"auto_publish": False}, headers=who.headers)
    assert again.status_code == 409
    assert_conforms(again.json(), "ProblemJson")
    assert (await client.put(url, json=payload(), headers=who.headers)).status_code == 409
    assert (await client.delete(url, headers=who.headers)).status_code == 409

    decided = await approve(client, sid)
    assert decided.status_code == 200, decided.text
    after = (await client.get(url, headers=who.headers)).json()
    assert after["status"]["value"] == "approved"
    assert after["max_allowed_payment_amount"] == settings.max_allowed_payment_amount
    # Approving twice is not a transition.
    assert (await approve(client, sid)).status_code == 409

    release = await client.get(f"{url}/release", headers=who.headers)
    assert release.status_code == 200
    assert_conforms(release.json(), "CmsServicePublication")
    assert release.json()["status"] == "unpublished"
    assert release.json()["name"] == "Elezioni"

    assert (await client.post(f"{url}/release", headers=who.headers)).status_code == 204
    published = (await client.get(f"{url}/release", headers=who.headers)).json()
    assert published["status"] == "published"
    assert (await client.post(f"{url}/release", headers=who.headers)).status_code == 409
    assert (await client.delete(f"{url}/release", headers=who.headers)).status_code == 204
    assert (await client.delete(f"{url}/release", headers=who.headers)).status_code == 409

    history = await client.get(f"{url}/history", headers=who.headers)
    assert history.status_code == 200
    assert_conforms(history.json(), "CmsServiceHistory")
    steps = [(i["status"]["kind"], i["status"]["value"]) for i in history.json()["items"]]
    assert steps == [
        ("publication", "unpublished"),
        ("publication", "published"),
        ("publication", "unpublished"),
        ("lifecycle", "approved"),
        ("lifecycle", "submitted"),
        ("lifecycle", "draft"),
        ("lifecycle", "draft"),
    ]

    assert (await client.delete(url, headers=who.headers)).status_code == 204
    assert (await client.get(url, headers=who.headers)).status_code == 404
    assert (await client.delete(url, headers=who.headers)).status_code == 404
    listed = (await client.get(f"{MANAGE}/services", headers=who.headers)).json()
    assert sid not in [s["id"] for s in listed["value"]]


async def test_a_rejection_keeps_its_reason_until_the_next_edit(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    sid = (await create(client, who))["id"]
    url = f"{MANAGE}/services/{sid}"
    await submit(client, who, sid, auto_publish=True)
    reason = "La privacy_url non porta all'informativa del servizio."
    rejected = await client.post(
        f"/admin/v1/services/{sid}/reject", json={"reason": reason}, headers=ADMIN
    )
    assert rejected.status_code == 200, rejected.text
    shown = (await client.get(url, headers=who.headers)).json()
    assert shown["status"] == {"value": "rejected", "reason": reason}
    assert_conforms(shown, "CmsServiceLifecycle")
    latest = (await client.get(f"{url}/history", headers=who.headers)).json()["items"][0]
    assert latest["status"] == {"kind": "lifecycle", "value": "rejected", "reason": reason}

    # A rejected service is not reviewed again until it changes; rejection is not approval.
    review = await client.put(f"{url}/review", json={"auto_publish": True}, headers=who.headers)
    assert review.status_code == 409
    assert (await client.post(f"{url}/release", headers=who.headers)).status_code == 404
    assert (await approve(client, sid)).status_code == 409
    edited = await client.put(url, json=payload(), headers=who.headers)
    assert edited.json()["status"] == {"value": "draft"}
    await submit(client, who, sid, auto_publish=True)
    assert (await approve(client, sid)).status_code == 200
    release = (await client.get(f"{url}/release", headers=who.headers)).json()
    assert release["status"] == "published"


async def test_reviews_need_a_decision_flag_and_a_known_service(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    sid = (await create(client, who))["id"]
    missing = await client.put(f"{MANAGE}/services/{sid}/review", json={}, headers=who.headers)
    assert missing.status_code == 400
    assert_conforms(missing.json(), "ProblemJson")
    unknown = await client.put(
        f"{MANAGE}/services/01JDXZ2T5G8Q4K7W3M6N9P1R2S/review",
        json={"auto_publish": False},
        headers=who.headers,
    )
    assert unknown.status_code == 404
    assert (
        await client.post("/admin/v1/services/01JDXZ2T5G8Q4K7W3M6N9P1R2S/approve", headers=ADMIN)
    ).status_code == 404
    # An operator can only decide on what waits for a decision.
    assert (await approve(client, sid)).status_code == 409
    rejected = await client.post(f"/admin/v1/services/{sid}/reject", headers=ADMIN)
    assert rejected.status_code == 409
    assert (await client.get(f"{MANAGE}/services/{sid}", headers=who.headers)).json()["status"] == {
        "value": "draft"
    }


async def test_editing_a_published_service_keeps_the_released_version_live(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    sid = (await approved(client, who, auto_publish=True, name="Tributi"))["id"]
    url = f"{MANAGE}/services/{sid}"
    edited = await client.put(url, json=payload(name="Tributi e canoni"), headers=who.headers)
    assert edited.json()["status"]["value"] == "draft"
    release = (await client.get(f"{url}/release", headers=who.headers)).json()
    assert (release["name"], release["status"]) == ("Tributi", "published")
    card = await client.get(f"/api/catalog/v1/services/{sid}")
    assert card.json()["name"] == "Tributi"

    await submit(client, who, sid, auto_publish=False)
    assert (await approve(client, sid)).status_code == 200
    release = (await client.get(f"{url}/release", headers=who.headers)).json()
    # The new version replaces the old one in place: still published.
    assert (release["name"], release["status"]) == ("Tributi e canoni", "published")
    assert (await client.get(f"/api/catalog/v1/services/{sid}")).json()["name"] == (
        "Tributi e canoni"
    )


async def test_a_payload_is_checked_as_io_checks_it(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    who = await manager(factory)
    without_topic = payload()
    del without_topic["metadata"]["topic_id"]
    without_organization = payload()
    del without_organization["organization"]
    for body in (
        without_topic,
        without_organization,
        payload(name=""),
        payload(metadata={"scope": "LOCAL", "topic_id": 99}),
        payload(metadata={"scope": "CITY", "topic_id": 1}),
        payload(authorized_recipients=["not-a-fiscal-code"]),
        payload(max_allowed_payment_amount=10_000_000_000),
    ):
        response = await client.post(f"{MANAGE}/services", json=body, headers=who.headers)
        assert response.status_code == 400, body
        assert response.headers["content-type"].startswith("application/problem+json")
        assert_conforms(response.json(), "ProblemJson")
    listed = (await client.get(f"{MANAGE}/services", headers=who.headers)).json()
    assert listed["pagination"]["count"] == 0


async def test_unknown_properties_are_dropped_and_recipients_kept(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    who = await manager(factory)
    created = await create(
        client, who, authorized_recipients=["RSSMRA80A01H501U"], surprise="ignored"
    )
    assert "surprise" not in created
    assert created["authorized_recipients"] == [settings.sandbox_fiscal_code, "RSSMRA80A01H501U"]
