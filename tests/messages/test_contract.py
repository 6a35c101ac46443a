"""civio's real answers validate against the definitions of IO's own PA API document."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml

from tests.factories import Factory, valid_message

IO_SPEC = Path(__file__).resolve().parents[1] / "contracts" / "io-pa-api.yaml"


@cache
def definitions() -> dict[str, Any]:
    return yaml.safe_load(IO_SPEC.read_text())["definitions"]  # type: ignore[no-any-return]


def assert_conforms(instance: Any, definition: str) -> None:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions()}
    errors = [e.message for e in jsonschema_rs.Draft4Validator(schema).iter_errors(instance)]
    assert not errors, f"{definition}: {errors}"


def test_the_validator_catches_a_wrong_shape() -> None:
    with pytest.raises(AssertionError):
        assert_conforms(
            {"message": {"id": "x"}, "status": "NOPE"}, "ExternalMessageResponseWithContent"
        )


async def test_message_responses_conform(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender(max_amount=10_000)
    fc = await factory.citizen()
    created = await client.post(
        f"/api/v1/messages/{fc}",
        json=valid_message(
            due_date="2030-01-01T10:00:00Z",
            payment_data={"amount": 1200, "notice_number": "012345678901234567"},
        ),
        headers=sender.headers,
    )
    assert_conforms(created.json(), "CreatedMessage")
    accepted = await client.get(created.headers["Location"], headers=sender.headers)
    assert_conforms(accepted.json(), "ExternalMessageResponseWithContent")
    await factory.drain()
    processed = await client.get(created.headers["Location"], headers=sender.headers)
    assert processed.json()["status"] == "PROCESSED"
    assert_conforms(processed.json(), "ExternalMessageResponseWithContent")
    bad = await client.post(f"/api/v1/messages/{fc}", json={"content": {}}, headers=sender.headers)
    assert_conforms(bad.json(), "ProblemJson")


async def test_profile_activation_and_feed_responses_conform(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    special = await factory.sender(
        special=True,
        groups=["ApiMessageWrite", "ApiLimitedProfileRead", "ApiSubscriptionsFeedRead"],
    )
    fc = await factory.citizen()
    activation = await client.put(
        "/api/v1/activations/",
        json={"fiscal_code": fc, "status": "ACTIVE"},
        headers=special.headers,
    )
    assert_conforms(activation.json(), "Activation")
    profile = await client.get(f"/api/v1/profiles/{fc}", headers=special.headers)
    assert_conforms(profile.json(), "LimitedProfile")
    feed = await client.get("/api/v1/subscriptions-feed/2021-03-04", headers=special.headers)
    assert_conforms(feed.json(), "SubscriptionsFeed")
