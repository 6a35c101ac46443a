"""Limited profile, activations and subscriptions feed (io-pa-api.md §6, 17-18, 23-24)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from civio.core.db import transaction
from civio.profiles.service import record_subscription_event
from tests.factories import Factory, random_fiscal_code
from tests.messages.test_submit import assert_problem


async def test_unknown_citizen_is_404_profile_not_found(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    response = await client.get(f"/api/v1/profiles/{random_fiscal_code()}", headers=sender.headers)
    assert_problem(response, 404, "Profile not found")


async def test_registered_citizen_allows_the_sender(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen()
    response = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert response.status_code == 200
    assert response.json() == {"sender_allowed": True, "preferred_languages": ["it_IT"]}


async def test_inbox_off_looks_like_no_profile(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender()
    fc = await factory.citizen(inbox=False)
    response = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert_problem(response, 404, "Profile not found")


@pytest.mark.parametrize("mode", ["LEGACY", "AUTO"])
async def test_blocked_sender_is_not_allowed(
    client: httpx.AsyncClient, factory: Factory, mode: str
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen(mode=mode, block=[sender.service_id])
    response = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert response.json()["sender_allowed"] is False


async def test_manual_mode_without_preference_is_not_allowed(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen(mode="MANUAL")
    response = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert response.json()["sender_allowed"] is False


async def test_post_profiles_validates_and_answers_like_get(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    bad = await client.post("/api/v1/profiles", json={"fiscal_code": "bad"}, headers=sender.headers)
    assert_problem(bad, 400, "Invalid FiscalCodePayload")
    fc = await factory.citizen()
    good = await client.post("/api/v1/profiles", json={"fiscal_code": fc}, headers=sender.headers)
    assert good.json()["sender_allowed"] is True
    missing = await client.post(
        "/api/v1/profiles", json={"fiscal_code": random_fiscal_code()}, headers=sender.headers
    )
    assert missing.status_code == 404


async def test_sandbox_key_cannot_probe_other_fiscal_codes(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sandbox = await factory.sender(groups=["ApiLimitedMessageWrite", "ApiLimitedProfileRead"])
    fc = await factory.citizen()
    response = await client.get(f"/api/v1/profiles/{fc}", headers=sandbox.headers)
    assert_problem(response, 403, "Recipient forbidden")


async def test_profile_read_needs_its_group(client: httpx.AsyncClient, factory: Factory) -> None:
    writer = await factory.sender(groups=["ApiMessageWrite"])
    response = await client.get(f"/api/v1/profiles/{random_fiscal_code()}", headers=writer.headers)
    assert_problem(response, 403, "You are not allowed here")


# --- activations ----------------------------------------------------------------------------


async def test_activations_are_for_special_services_only(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    standard = await factory.sender()
    fc = await factory.citizen()
    response = await client.post(
        "/api/v1/activations/", json={"fiscal_code": fc}, headers=standard.headers
    )
    assert_problem(response, 403, "You are not allowed here")


async def test_activation_lifecycle_and_sender_allowed(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    special = await factory.sender(special=True)
    fc = await factory.citizen()
    missing = await client.post(
        "/api/v1/activations/", json={"fiscal_code": fc}, headers=special.headers
    )
    assert_problem(missing, 404, "Not Found")
    assert (await client.get(f"/api/v1/profiles/{fc}", headers=special.headers)).json()[
        "sender_allowed"
    ] is False

    first = await client.put(
        "/api/v1/activations/",
        json={"fiscal_code": fc, "status": "ACTIVE"},
        headers=special.headers,
    )
    assert first.status_code == 200
    assert first.json() == {
        "service_id": special.service_id,
        "fiscal_code": fc,
        "status": "ACTIVE",
        "version": 0,
    }
    assert (await client.get(f"/api/v1/profiles/{fc}", headers=special.headers)).json()[
        "sender_allowed"
    ] is True
    second = await client.put(
        "/api/v1/activations/",
        json={"fiscal_code": fc, "status": "INACTIVE"},
        headers=special.headers,
    )
    assert second.json()["version"] == 1
    read = await client.post(
        "/api/v1/activations/", json={"fiscal_code": fc}, headers=special.headers
    )
    assert read.json()["status"] == "INACTIVE"


async def test_activation_status_must_be_known(client: httpx.AsyncClient, factory: Factory) -> None:
    special = await factory.sender(special=True)
    response = await client.put(
        "/api/v1/activations/",
        json={"fiscal_code": random_fiscal_code(), "status": "FOO"},
        headers=special.headers,
    )
    assert_problem(response, 400, "Invalid ActivationPayload")


# --- subscriptions feed ---------------------------------------------------------------------


def fc_hash(fc: str) -> str:
    return hashlib.sha256(fc.encode()).hexdigest()


async def test_feed_for_today_is_not_available_yet(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    today = datetime.now(UTC).date().isoformat()
    response = await client.get(f"/api/v1/subscriptions-feed/{today}", headers=sender.headers)
    assert_problem(response, 404, "Data not available yet")


@pytest.mark.parametrize("bad", ["2019-13-45", "2019-02-30", "20190101", "yesterday"])
async def test_feed_date_must_be_a_real_date(
    client: httpx.AsyncClient, factory: Factory, bad: str
) -> None:
    sender = await factory.sender()
    response = await client.get(f"/api/v1/subscriptions-feed/{bad}", headers=sender.headers)
    assert_problem(response, 400, "Invalid DateUTC")


async def test_feed_lists_hashes_of_the_days_changes(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    other = await factory.sender()
    day = date(2020, 1, 15) + timedelta(days=hash(sender.service_id) % 2000)
    new_profile, gone_profile, subscribed, unsubscribed, new_but_left = (
        random_fiscal_code() for _ in range(5)
    )
    async with transaction(factory.runtime.sessions) as session:

        async def event(fc: str, service_id: str | None, subscribed_: bool) -> None:
            await record_subscription_event(
                session,
                factory.runtime.keyring,
                fc,
                service_id=service_id,
                subscribed=subscribed_,
                day=day,
            )

        await event(new_profile, None, True)
        await event(gone_profile, None, False)
        await event(subscribed, sender.service_id, True)
        await event(unsubscribed, sender.service_id, False)
        await event(new_but_left, None, True)
        await event(new_but_left, sender.service_id, False)
        await event(random_fiscal_code(), other.service_id, True)  # another service's
    response = await client.get(
        f"/api/v1/subscriptions-feed/{day.isoformat()}", headers=sender.headers
    )
    assert response.status_code == 200
    feed = response.json()
    assert feed["dateUTC"] == day.isoformat()
    assert set(feed["subscriptions"]) == {fc_hash(new_profile), fc_hash(subscribed)}
    assert set(feed["unsubscriptions"]) == {fc_hash(gone_profile), fc_hash(unsubscribed)}
    assert all(len(h) == 64 and h == h.lower() for h in feed["subscriptions"])


async def test_feed_needs_its_group(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender(groups=["ApiMessageWrite"])
    response = await client.get("/api/v1/subscriptions-feed/2020-01-01", headers=sender.headers)
    assert_problem(response, 403, "You are not allowed here")


async def test_the_feed_table_keeps_no_hash_of_a_fiscal_code_in_clear(
    factory: Factory,
) -> None:
    """The feed publishes sha256 of fiscal codes, which anyone can compute from a guess; the
    table behind it keeps them sealed, so a copy of the database does not tell who joined
    or left which service (a deleted citizen included)."""
    fc = await factory.citizen()  # a new profile with its inbox on: a subscription
    digest = hashlib.sha256(fc.encode()).digest()
    async with transaction(factory.runtime.sessions) as session:
        rows = (
            await session.execute(text("SELECT row_to_json(e)::text FROM subscription_events e"))
        ).scalars()
        dumped = "\n".join(rows)
    assert dumped
    for form in (fc, digest.hex(), base64.b64encode(digest).decode(), "\\\\x" + digest.hex()):
        assert form not in dumped
