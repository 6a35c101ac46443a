"""Submitting messages: IO's validation bounds, gates and titles (io-pa-api.md §6, 1-16, 21-22)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.factories import Factory, Sender, random_fiscal_code, valid_message

ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


async def submit(
    client: httpx.AsyncClient, sender: Sender, body: dict[str, Any], fc: str | None = None
) -> httpx.Response:
    fc = fc or random_fiscal_code()
    return await client.post(f"/api/v1/messages/{fc}", json=body, headers=sender.headers)


@pytest.fixture
async def sender(factory: Factory) -> Sender:
    return await factory.sender()


def assert_problem(response: httpx.Response, status: int, title: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    if title is not None:
        assert body["title"] == title


@pytest.mark.parametrize(("length", "status"), [(9, 400), (10, 201), (120, 201), (121, 400)])
async def test_subject_bounds_are_inclusive(
    client: httpx.AsyncClient, sender: Sender, length: int, status: int
) -> None:
    response = await submit(client, sender, valid_message(subject="s" * length))
    assert response.status_code == status, response.text
    if status == 400:
        assert_problem(response, 400, "Invalid message structure")
        assert "root.content.subject" in response.json()["detail"]


@pytest.mark.parametrize(("length", "status"), [(79, 400), (80, 201), (10000, 201), (10001, 400)])
async def test_markdown_bounds_are_inclusive(
    client: httpx.AsyncClient, sender: Sender, length: int, status: int
) -> None:
    response = await submit(client, sender, valid_message(markdown="m" * length))
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("ttl", "status"), [(3599, 400), (3600, 201), (604800, 201), (604801, 400), ("3600", 400)]
)
async def test_time_to_live_bounds(
    client: httpx.AsyncClient, sender: Sender, ttl: Any, status: int
) -> None:
    response = await submit(client, sender, {**valid_message(), "time_to_live": ttl})
    assert response.status_code == status, response.text


async def test_time_to_live_defaults_to_3600(
    client: httpx.AsyncClient, sender: Sender, factory: Factory
) -> None:
    fc = random_fiscal_code()
    created = await submit(client, sender, valid_message(), fc)
    got = await client.get(created.headers["Location"], headers=sender.headers)
    assert got.json()["message"]["time_to_live"] == 3600


@pytest.mark.parametrize(
    "bad", ["aaaaaa00a00a000a", "AAAAAA00A00A000", "AAAAAA00A00A000AA", "1234567890123456"]
)
async def test_malformed_fiscal_code_in_path_is_400(
    client: httpx.AsyncClient, sender: Sender, bad: str
) -> None:
    response = await client.post(
        f"/api/v1/messages/{bad}", json=valid_message(), headers=sender.headers
    )
    assert_problem(response, 400, "Invalid FiscalCode")


async def test_fiscal_code_in_both_path_and_body_is_bad_parameters(
    client: httpx.AsyncClient, sender: Sender
) -> None:
    fc = random_fiscal_code()
    response = await submit(client, sender, {**valid_message(), "fiscal_code": fc}, fc)
    assert_problem(response, 400, "Bad parameters")
    assert "but not in both" in response.json()["detail"]


async def test_body_variant_without_fiscal_code_is_bad_parameters(
    client: httpx.AsyncClient, sender: Sender
) -> None:
    response = await client.post("/api/v1/messages", json=valid_message(), headers=sender.headers)
    assert_problem(response, 400, "Bad parameters")


async def test_body_variant_accepts_fiscal_code_in_payload(
    client: httpx.AsyncClient, sender: Sender
) -> None:
    fc = random_fiscal_code()
    response = await client.post(
        "/api/v1/messages", json={**valid_message(), "fiscal_code": fc}, headers=sender.headers
    )
    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"/api/v1/messages/{fc}/")


async def test_created_message_has_location_and_only_an_ulid_id(
    client: httpx.AsyncClient, sender: Sender
) -> None:
    fc = random_fiscal_code()
    response = await submit(client, sender, valid_message(), fc)
    assert response.status_code == 201
    body = response.json()
    assert list(body) == ["id"]
    assert ULID_RE.match(body["id"])
    assert response.headers["Location"] == f"/api/v1/messages/{fc}/{body['id']}"


async def test_unknown_properties_are_ignored(client: httpx.AsyncClient, sender: Sender) -> None:
    body = valid_message(colour="blue")
    body["surprise"] = {"nested": True}
    response = await submit(client, sender, body)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("due_date", "status"),
    [
        ("2018-10-13T00:00:00.000Z", 201),
        ("2018-10-13T00:00:00Z", 201),
        ("2018-10-13T02:00:00+02:00", 201),
        ("13/10/2018", 400),
        ("2018-10-13", 400),
        ("2018-02-30T00:00:00Z", 400),
    ],
)
async def test_due_date_must_be_an_iso_timestamp(
    client: httpx.AsyncClient, sender: Sender, due_date: str, status: int
) -> None:
    response = await submit(client, sender, valid_message(due_date=due_date))
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "payment",
    [
        {"amount": 100, "notice_number": "412345678901234567"},  # first digit 4
        {"amount": 100, "notice_number": "01234567890123456"},  # 17 digits
        {"amount": 0, "notice_number": "012345678901234567"},
        {"amount": 10_000_000_000, "notice_number": "012345678901234567"},
        {"notice_number": "012345678901234567"},
    ],
)
async def test_invalid_payment_data_is_400(
    client: httpx.AsyncClient, factory: Factory, payment: dict[str, Any]
) -> None:
    sender = await factory.sender(max_amount=1_000_000)
    response = await submit(client, sender, valid_message(payment_data=payment))
    assert_problem(response, 400, "Invalid message structure")


async def test_amount_above_service_maximum_is_rejected(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender(max_amount=5000)
    ok = await submit(
        client,
        sender,
        valid_message(payment_data={"amount": 5000, "notice_number": "012345678901234567"}),
    )
    assert ok.status_code == 201
    too_much = await submit(
        client,
        sender,
        valid_message(payment_data={"amount": 5001, "notice_number": "012345678901234567"}),
    )
    assert_problem(too_much, 400, "Error while sending payment metadata")
    assert "5001 cents" in too_much.json()["detail"]
    assert "5000 cents" in too_much.json()["detail"]


async def test_default_maximum_of_zero_forbids_any_payment(
    client: httpx.AsyncClient, sender: Sender
) -> None:
    response = await submit(
        client,
        sender,
        valid_message(payment_data={"amount": 1, "notice_number": "012345678901234567"}),
    )
    assert_problem(response, 400, "Error while sending payment metadata")


async def test_payee_requires_its_group(client: httpx.AsyncClient, factory: Factory) -> None:
    payment = {
        "amount": 100,
        "notice_number": "012345678901234567",
        "payee": {"fiscal_code": "12345678901"},
    }
    without = await factory.sender(max_amount=1000)
    response = await submit(client, without, valid_message(payment_data=payment))
    assert_problem(response, 403, "You are not allowed here")
    assert "payment message with payee" in response.json()["detail"]
    with_group = await factory.sender(
        max_amount=1000, groups=["ApiMessageWrite", "ApiMessageWriteWithPayee"]
    )
    assert (
        await submit(client, with_group, valid_message(payment_data=payment))
    ).status_code == 201


async def test_payee_fiscal_code_must_have_11_digits(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender(
        max_amount=1000, groups=["ApiMessageWrite", "ApiMessageWriteWithPayee"]
    )
    payment = {
        "amount": 100,
        "notice_number": "012345678901234567",
        "payee": {"fiscal_code": "1234567890"},
    }
    response = await submit(client, sender, valid_message(payment_data=payment))
    assert_problem(response, 400, "Invalid message structure")


async def test_advanced_requires_its_group_and_premium_is_invalid(
    client: httpx.AsyncClient, factory: Factory, sender: Sender
) -> None:
    advanced = {**valid_message(), "feature_level_type": "ADVANCED"}
    response = await submit(client, sender, advanced)
    assert_problem(response, 403, "You are not allowed here")
    assert "Premium" in response.json()["detail"]
    premium = await submit(client, sender, {**valid_message(), "feature_level_type": "PREMIUM"})
    assert_problem(premium, 400, "Invalid message structure")
    allowed = await factory.sender(groups=["ApiMessageWrite", "ApiMessageWriteAdvanced"])
    assert (await submit(client, allowed, advanced)).status_code == 201


async def test_eu_covid_cert_requires_its_group(
    client: httpx.AsyncClient, sender: Sender, factory: Factory
) -> None:
    body = valid_message(eu_covid_cert={"auth_code": "abc"})
    response = await submit(client, sender, body)
    assert_problem(response, 403, "You are not allowed here")
    assert "EUCovidCert" in response.json()["detail"]
    allowed = await factory.sender(groups=["ApiMessageWrite", "ApiMessageWriteEUCovidCert"])
    assert (await submit(client, allowed, body)).status_code == 201


async def test_third_party_data_gates(
    client: httpx.AsyncClient, sender: Sender, factory: Factory
) -> None:
    response = await submit(client, sender, valid_message(third_party_data={"id": "x-1"}))
    assert_problem(response, 403, "You are not allowed here")
    assert "third party" in response.json()["detail"]

    third = await factory.sender(groups=["ApiMessageWrite", "ApiThirdPartyMessageWrite"])
    no_config = await submit(client, third, valid_message(third_party_data={"id": "x-1"}))
    assert_problem(no_config, 403, "No configuration id for remote content")

    attachments = await submit(
        client,
        third,
        valid_message(
            third_party_data={
                "id": "x-1",
                "has_attachments": True,
                "configuration_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            }
        ),
    )
    assert_problem(attachments, 403, "Attachments call forbidden")

    unknown_config = await submit(
        client,
        third,
        valid_message(
            third_party_data={"id": "x-1", "configuration_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
        ),
    )
    assert_problem(unknown_config, 404, "Remote Content Configuration NOT FOUND")


async def test_sandbox_key_reaches_only_authorized_recipients(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    allowed_fc = random_fiscal_code()
    sandbox = await factory.sender(
        groups=["ApiLimitedMessageWrite", "ApiMessageRead"], recipients=[allowed_fc]
    )
    outside = await submit(client, sandbox, valid_message())
    assert_problem(outside, 403, "Recipient forbidden")
    assert (await submit(client, sandbox, valid_message(), allowed_fc)).status_code == 201
    platform_sandbox = await submit(client, sandbox, valid_message(), "AAAAAA00A00A000A")
    assert platform_sandbox.status_code == 201


async def test_limited_group_wins_over_production_group(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    both = await factory.sender(groups=["ApiMessageWrite", "ApiLimitedMessageWrite"])
    assert_problem(await submit(client, both, valid_message()), 403, "Recipient forbidden")


async def test_missing_or_unknown_key_is_401(client: httpx.AsyncClient, sender: Sender) -> None:
    fc = random_fiscal_code()
    missing = await client.post(f"/api/v1/messages/{fc}", json=valid_message())
    assert_problem(missing, 401)
    unknown = await client.post(
        f"/api/v1/messages/{fc}",
        json=valid_message(),
        headers={"Ocp-Apim-Subscription-Key": "0" * 64},
    )
    assert_problem(unknown, 401)


async def test_401_comes_before_body_validation(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/messages/AAAAAA00A00A000A", json={"content": {}})
    assert response.status_code == 401


async def test_groups_are_checked_before_the_body(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    reader = await factory.sender(groups=["ApiMessageRead"])
    wrong_group = await submit(client, reader, {"content": {}})
    assert_problem(wrong_group, 403, "You are not allowed here")
    nothing = await factory.sender(groups=["ApiNoRateLimit"])
    no_scope = await submit(client, nothing, valid_message())
    assert_problem(no_scope, 403, "User has no valid scopes")


async def test_secondary_key_works_too(client: httpx.AsyncClient, sender: Sender) -> None:
    response = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(),
        headers={"Ocp-Apim-Subscription-Key": sender.secondary_key},
    )
    assert response.status_code == 201


async def test_client_ip_outside_authorized_cidrs_is_403(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    # The test client's socket peer is 203.0.113.7 (see conftest).
    outside = await factory.sender(cidrs=["192.0.2.0/24"])
    assert_problem(await submit(client, outside, valid_message()), 403, "You are not allowed here")
    inside = await factory.sender(cidrs=["192.0.2.0/24", "203.0.113.0/24"])
    assert (await submit(client, inside, valid_message())).status_code == 201
    exact = await factory.sender(cidrs=["203.0.113.7"])
    assert (await submit(client, exact, valid_message())).status_code == 201


async def test_x_forwarded_for_is_ignored_from_untrusted_peers(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender(cidrs=["198.51.100.0/24"])
    spoofed = await client.post(
        f"/api/v1/messages/{random_fiscal_code()}",
        json=valid_message(),
        headers={**sender.headers, "X-Forwarded-For": "198.51.100.9"},
    )
    assert_problem(spoofed, 403, "You are not allowed here")
