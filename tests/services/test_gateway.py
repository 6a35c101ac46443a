"""The gateway: rate limits per owner, trusted proxies, key rotation and cache invalidation."""

from __future__ import annotations

import httpx
import pytest

from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.runtime import Runtime
from civio.services import service as services
from tests.factories import Factory, client_with, random_fiscal_code
from tests.messages.test_submit import assert_problem


async def test_over_the_limit_is_429_with_retry_headers(
    settings: Settings, runtime: Runtime, factory: Factory
) -> None:
    small = settings.model_copy(update={"rate_limit_calls": 3, "rate_limit_window_seconds": 60})
    sender = await factory.sender()
    unlimited = await factory.sender(groups=["ApiMessageWrite", "ApiMessageRead", "ApiNoRateLimit"])
    async with client_with(small, runtime) as client:
        url = f"/api/v1/profiles/{random_fiscal_code()}"
        codes = [(await client.get(url, headers=sender.headers)).status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]
        limited = await client.get(url, headers=sender.headers)
        assert_problem(limited, 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["x-rate-limit-remaining"] == "0"
        assert limited.headers["x-rate-limit-retry-after"] == limited.headers["Retry-After"]
        for _ in range(6):
            response = await client.get(url, headers=unlimited.headers)
            assert response.status_code == 403  # no profile-read group, but never 429


async def test_rate_limit_is_shared_by_the_services_of_one_owner(
    settings: Settings, runtime: Runtime, factory: Factory
) -> None:
    small = settings.model_copy(update={"rate_limit_calls": 2, "rate_limit_window_seconds": 60})
    email = f"{random_fiscal_code().lower()}@example.org"
    first = await factory.sender(owner_email=email)
    second = await factory.sender(owner_email=email)
    async with client_with(small, runtime) as client:
        url = f"/api/v1/profiles/{random_fiscal_code()}"
        assert (await client.get(url, headers=first.headers)).status_code == 404
        assert (await client.get(url, headers=second.headers)).status_code == 404
        assert (await client.get(url, headers=first.headers)).status_code == 429


@pytest.mark.parametrize(
    ("forwarded", "status"),
    [("198.51.100.9", 201), ("198.51.100.9, 10.0.0.5", 201), ("192.0.2.1", 403)],
)
async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    settings: Settings, runtime: Runtime, factory: Factory, forwarded: str, status: int
) -> None:
    proxied = settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
    sender = await factory.sender(cidrs=["198.51.100.0/24"])
    async with client_with(proxied, runtime, peer=("10.1.2.3", 4000)) as client:
        response = await client.post(
            f"/api/v1/messages/{random_fiscal_code()}",
            json={
                "content": {
                    "subject": "A subject line",
                    "markdown": "m" * 100,
                }
            },
            headers={**sender.headers, "X-Forwarded-For": forwarded},
        )
        assert response.status_code == status, response.text


async def test_regenerated_key_replaces_only_that_key(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    url = f"/api/v1/profiles/{random_fiscal_code()}"
    async with transaction(factory.runtime.sessions) as session:
        renewed = await services.regenerate_key(session, sender.service_id, "primary")
    assert renewed.primary_key
    assert renewed.primary_key != sender.key
    assert renewed.secondary_key is None  # only the key just created is shown
    old = await client.get(url, headers={"Ocp-Apim-Subscription-Key": sender.key})
    assert old.status_code == 401
    new = await client.get(url, headers={"Ocp-Apim-Subscription-Key": renewed.primary_key})
    assert new.status_code == 404
    secondary = await client.get(url, headers={"Ocp-Apim-Subscription-Key": sender.secondary_key})
    assert secondary.status_code == 404


async def test_group_changes_reach_the_gateway(client: httpx.AsyncClient, factory: Factory) -> None:
    sender = await factory.sender(groups=["ApiMessageWrite"])
    url = f"/api/v1/profiles/{random_fiscal_code()}"
    assert (await client.get(url, headers=sender.headers)).status_code == 403
    async with transaction(factory.runtime.sessions) as session:
        await services.change_groups(
            session, sender.service_id, ["ApiLimitedProfileRead"], grant=True
        )
    assert (await client.get(url, headers=sender.headers)).status_code == 404
    async with transaction(factory.runtime.sessions) as session:
        await services.change_groups(
            session, sender.service_id, ["ApiLimitedProfileRead"], grant=False
        )
    assert (await client.get(url, headers=sender.headers)).status_code == 403


async def test_service_lookups_are_cached_for_at_most_the_configured_time(
    settings: Settings, runtime: Runtime, factory: Factory
) -> None:
    import asyncio

    cached = settings.model_copy(update={"service_cache_seconds": 0.3})
    sender = await factory.sender(groups=["ApiMessageWrite"])
    url = f"/api/v1/profiles/{random_fiscal_code()}"
    async with client_with(cached, runtime) as client:
        assert (await client.get(url, headers=sender.headers)).status_code == 403
        async with transaction(runtime.sessions) as session:
            await services.change_groups(
                session, sender.service_id, ["ApiLimitedProfileRead"], grant=True
            )
        await asyncio.sleep(0.35)
        assert (await client.get(url, headers=sender.headers)).status_code == 404


async def test_cidr_applies_to_every_pa_endpoint(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    groups = [
        "ApiMessageWrite",
        "ApiMessageRead",
        "ApiLimitedProfileRead",
        "ApiSubscriptionsFeedRead",
    ]
    outside = await factory.sender(groups=groups, cidrs=["192.0.2.0/24"], special=True)
    fc = random_fiscal_code()
    calls = [
        client.get(f"/api/v1/messages/{fc}/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=outside.headers),
        client.get(f"/api/v1/profiles/{fc}", headers=outside.headers),
        client.post("/api/v1/profiles", json={"fiscal_code": fc}, headers=outside.headers),
        client.get("/api/v1/subscriptions-feed/2020-01-01", headers=outside.headers),
        client.post("/api/v1/activations/", json={"fiscal_code": fc}, headers=outside.headers),
    ]
    for call in calls:
        assert_problem(await call, 403, "You are not allowed here")


async def test_concurrent_requests_with_a_cold_cache_send_one_lookup(
    settings: Settings, runtime: Runtime, factory: Factory
) -> None:
    """When the cache has nothing (start, or expiry under load), 30 requests with the same
    key wait for one query instead of sending 30."""
    import asyncio

    from sqlalchemy import event

    sender = await factory.sender(groups=["ApiMessageWrite", "ApiLimitedProfileRead"])
    lookups: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "primary_key_hash" in statement:
            lookups.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with client_with(settings, runtime) as client:
            url = f"/api/v1/profiles/{random_fiscal_code()}"
            responses = await asyncio.gather(
                *(client.get(url, headers=sender.headers) for _ in range(30))
            )
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)
    assert [r.status_code for r in responses] == [404] * 30
    assert len(lookups) == 1
