"""Sender callbacks: signed status events POSTed to a real local receiver, in order, retried.

No mocks: events come from real messages through the gateway and the worker, and are
delivered over a socket to ``tests.callbacks.receiver``. Retries run with tiny backoff
settings on a runtime of their own, through the real worker (``Worker.run(drain=True)``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pgqueuer.errors import RetryRequested
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from structlog.testing import capture_logs
from typer.testing import CliRunner

from civio.callbacks.delivery import (
    deliver_job,
    deliver_pending,
    parse_retry_after,
    requeue_stranded,
)
from civio.callbacks.models import CallbackEvent
from civio.callbacks.service import (
    CALLBACK_TASK,
    CallbackPolicy,
    dedupe_key,
    emit,
    forget,
)
from civio.callbacks.signing import signature
from civio.cli import app as cli_app
from civio.core.config import Environment, Settings
from civio.core.crypto import CryptoError
from civio.core.db import transaction
from civio.core.problems import Problem
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.core.ssrf import OutboundGuard, use_resolver
from civio.services import service as services
from civio.services.schemas import ServiceCreate, ServiceMetadata, ServiceUpdate
from tests.callbacks.receiver import Receiver
from tests.core.fake_dns import FakeDNS
from tests.factories import (
    ADMIN,
    Factory,
    Sender,
    cli_env,
    client_with,
    random_fiscal_code,
    valid_message,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
FAST = {
    "callback_retry_base_seconds": 0.01,
    "callback_retry_max_seconds": 0.02,
    "callback_retry_after_max_seconds": 0.05,
}
runner = CliRunner()


def docs_verifier() -> Callable[..., bool]:
    """The verification snippet of docs/callbacks.md, executed as published."""
    section = DOCS.read_text().split("## Verifying a request", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our own documentation, on purpose
    return namespace["verify"]  # type: ignore[no-any-return]


verify = docs_verifier()


@pytest.fixture(scope="module")
async def fast_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = Runtime.build(settings.model_copy(update=FAST), pool_size=4)
    yield rt
    await rt.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


class Callbacks:
    """Creates callback senders and drains with fast retries; cleans up what it made, so no
    other test's drain meets a pending event of a stopped receiver."""

    def __init__(self, runtime: Runtime, fast: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.fast = fast
        self.settings = settings
        self.service_ids: list[str] = []

    @property
    def policy(self) -> CallbackPolicy:
        return CallbackPolicy(self.runtime.keyring, False, OutboundGuard(enforce=False))

    async def sender(self, url: str) -> tuple[Sender, str]:
        async with transaction(self.runtime.sessions) as session:
            created = await services.create_service(
                session,
                ServiceCreate(
                    name="Callback service",
                    organization_name="Comune di Prova",
                    organization_fiscal_code="12345678901",
                    groups=["ApiMessageWrite", "ApiMessageRead"],
                    service_metadata=ServiceMetadata(),
                    callback_url=url,
                ),
                sandbox_fiscal_code=self.settings.sandbox_fiscal_code,
                callback_policy=self.policy,
            )
        assert created.primary_key
        assert created.secondary_key
        assert created.callback_secret
        self.service_ids.append(created.service_id)
        sender = Sender(
            created.service_id, created.primary_key, created.secondary_key, "12345678901"
        )
        return sender, created.callback_secret

    def track(self, service_id: str) -> None:
        self.service_ids.append(service_id)

    async def drain(self) -> None:
        await Worker(self.fast).run(drain=True)

    async def events(self, service_id: str) -> list[CallbackEvent]:
        async with self.runtime.sessions() as session:
            rows = await session.scalars(
                select(CallbackEvent)
                .where(CallbackEvent.service_id == service_id)
                .order_by(CallbackEvent.id)
            )
            return list(rows)

    async def cleanup(self) -> None:
        if not self.service_ids:
            return
        async with transaction(self.runtime.sessions) as session:
            params = {"ids": self.service_ids}
            await session.execute(
                text(
                    "UPDATE callback_events SET status = 'FAILED', last_error = 'test ended' "
                    "WHERE service_id = ANY(:ids) AND status = 'PENDING'"
                ),
                params,
            )
            await session.execute(
                text(
                    "UPDATE services SET callback_url = NULL, callback_secret_ciphertext = NULL "
                    "WHERE service_id = ANY(:ids)"
                ),
                params,
            )
            await session.execute(
                text("DELETE FROM pgqueuer WHERE status = 'queued' AND dedupe_key = ANY(:keys)"),
                {"keys": [dedupe_key(sid) for sid in self.service_ids]},
            )
        for service_id in self.service_ids:
            forget(service_id)


@pytest.fixture
async def callbacks(
    runtime: Runtime, fast_runtime: Runtime, settings: Settings
) -> AsyncIterator[Callbacks]:
    helper = Callbacks(runtime, fast_runtime, settings)
    yield helper
    await helper.cleanup()


async def send(client: httpx.AsyncClient, sender: Sender, fc: str) -> str:
    response = await client.post(
        f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def message_statuses(receiver: Receiver) -> list[tuple[str, str]]:
    bodies = [r.json() for r in receiver.requests]
    return [(b["message_id"], b["status"]) for b in bodies if b["type"] == "message.status"]


def deliveries(outcome: str) -> float:
    return REGISTRY.get_sample_value("civio_callback_deliveries_total", {"outcome": outcome}) or 0.0


# --- delivery ------------------------------------------------------------------------------


async def test_receiver_gets_signed_events_in_order(
    client: httpx.AsyncClient, factory: Factory, callbacks: Callbacks, receiver: Receiver
) -> None:
    sender, secret = await callbacks.sender(receiver.url)
    fc = await factory.citizen()
    first = await send(client, sender, fc)
    second = await send(client, sender, fc)
    await factory.drain()

    statuses = message_statuses(receiver)
    for mid in (first, second):
        assert statuses.index((mid, "ACCEPTED")) < statuses.index((mid, "PROCESSED"))
    assert statuses[:2] == [(first, "ACCEPTED"), (second, "ACCEPTED")]
    received_ids = [r.json()["id"] for r in receiver.requests]
    assert received_ids == sorted(received_ids)
    assert len(set(received_ids)) == len(received_ids)

    now = time.time()
    for request in receiver.requests:
        body = request.json()
        assert request.path == "/civio/events"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "civio-callbacks/1"
        assert request.headers["X-Civio-Event-Id"] == str(body["id"])
        assert abs(int(request.headers["X-Civio-Timestamp"]) - now) < 60
        assert re.fullmatch(r"v1=[0-9a-f]{64}", request.headers["X-Civio-Signature"])
        assert verify(secret, request.headers, request.body)
        assert body["service_id"] == sender.service_id
        assert body["created_at"].endswith("Z")
        # ids and statuses only
        assert set(body) <= {"id", "type", "message_id", "service_id", "created_at", "status"} | {
            "channel"
        }

    rows = await callbacks.events(sender.service_id)
    assert [row.id for row in rows] == received_ids
    assert all(row.status == "DELIVERED" for row in rows)
    assert all(row.attempts == 1 and row.last_response_status == 200 for row in rows)
    assert all(row.delivered_at is not None and row.last_error is None for row in rows)


async def test_events_of_a_service_without_url_are_never_stored(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen()
    mid = await send(client, sender, fc)
    async with factory.runtime.sessions() as session:
        jobs = await session.scalar(
            text("SELECT count(*) FROM pgqueuer WHERE entrypoint = :task AND dedupe_key = :key"),
            {"task": CALLBACK_TASK, "key": dedupe_key(sender.service_id)},
        )
    assert jobs == 0
    await factory.drain()
    async with factory.runtime.sessions() as session:
        stored = await session.scalar(
            text(
                "SELECT count(*) FROM callback_events WHERE service_id = :sid OR message_id = :mid"
            ),
            {"sid": sender.service_id, "mid": mid},
        )
    assert stored == 0


async def test_stored_and_sent_payloads_carry_no_fiscal_code_or_content(
    client: httpx.AsyncClient, factory: Factory, callbacks: Callbacks, receiver: Receiver
) -> None:
    sender, _ = await callbacks.sender(receiver.url)
    fc = await factory.citizen()
    await send(client, sender, fc)
    rejected_fc = random_fiscal_code()  # no profile: REJECTED
    await send(client, sender, rejected_fc)
    await factory.drain()
    async with factory.runtime.sessions() as session:
        raw = (
            await session.scalars(
                text("SELECT payload::text FROM callback_events WHERE service_id = :sid"),
                {"sid": sender.service_id},
            )
        ).all()
    assert len(raw) == 4
    stored = "\n".join(raw)
    sent = b"\n".join(r.body for r in receiver.requests).decode()
    for blob in (stored, sent):
        assert fc not in blob
        assert rejected_fc not in blob
        assert "permit" not in blob  # the message subject/markdown
    assert "REJECTED" in stored
    assert "PROCESSED" in stored


async def test_retried_on_500_until_the_receiver_recovers(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    receiver.answer(500, 500, 500, 500)  # then 200
    sender, secret = await callbacks.sender(receiver.url)
    retries_before, delivered_before = deliveries("retry"), deliveries("delivered")
    await send(client, sender, random_fiscal_code())
    await callbacks.drain()

    accepted, rejected = await callbacks.events(sender.service_id)
    assert (accepted.status, accepted.attempts) == ("DELIVERED", 5)
    assert accepted.last_response_status == 200
    assert accepted.last_error is None
    assert (rejected.status, rejected.attempts) == ("DELIVERED", 1)
    # The later event waited for the earlier one's retries.
    assert [r.json()["id"] for r in receiver.requests] == [accepted.id] * 5 + [rejected.id]
    # Every attempt is signed afresh and verifies.
    assert all(verify(secret, r.headers, r.body) for r in receiver.requests)
    assert deliveries("retry") - retries_before == 4
    assert deliveries("delivered") - delivered_before == 2


async def test_five_failures_make_the_event_failed_and_the_next_still_goes(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    receiver.answer(500, 503, 500, 502, 500)
    sender, _ = await callbacks.sender(receiver.url)
    failed_before = deliveries("failed")
    await send(client, sender, random_fiscal_code())
    await callbacks.drain()

    accepted, rejected = await callbacks.events(sender.service_id)
    assert (accepted.status, accepted.attempts, accepted.last_response_status) == (
        "FAILED",
        5,
        500,
    )
    assert accepted.last_error == "HTTP 500"
    assert accepted.delivered_at is None
    assert (rejected.status, rejected.attempts) == ("DELIVERED", 1)
    assert [r.json()["id"] for r in receiver.requests] == [accepted.id] * 5 + [rejected.id]
    assert deliveries("failed") - failed_before == 1


async def test_a_4xx_fails_at_once_without_retry(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    receiver.answer(400)
    sender, _ = await callbacks.sender(receiver.url)
    await send(client, sender, random_fiscal_code())
    await callbacks.drain()

    accepted, rejected = await callbacks.events(sender.service_id)
    assert (accepted.status, accepted.attempts, accepted.last_response_status) == (
        "FAILED",
        1,
        400,
    )
    assert "not retried" in (accepted.last_error or "")
    assert rejected.status == "DELIVERED"
    assert len(receiver.requests) == 2


async def test_429_is_retried_honouring_retry_after(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    receiver.answer(429, headers={"Retry-After": "1"})
    sender, _ = await callbacks.sender(receiver.url)
    await send(client, sender, random_fiscal_code())
    await callbacks.drain()
    accepted, _ = await callbacks.events(sender.service_id)
    assert (accepted.status, accepted.attempts) == ("DELIVERED", 2)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None


async def test_network_errors_are_retried_then_failed(
    client: httpx.AsyncClient, callbacks: Callbacks
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender, _ = await callbacks.sender(f"http://127.0.0.1:{port}/nobody")
    await send(client, sender, random_fiscal_code())
    await callbacks.drain()
    events = await callbacks.events(sender.service_id)
    assert [(e.status, e.attempts, e.last_response_status) for e in events] == [
        ("FAILED", 5, None),
        ("FAILED", 5, None),
    ]
    assert all("Connect" in (e.last_error or "") for e in events)


async def test_a_tampered_or_replayed_request_fails_the_documented_check(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    sender, secret = await callbacks.sender(receiver.url)
    await send(client, sender, random_fiscal_code())
    await callbacks.drain()
    request = receiver.requests[0]
    headers = {
        "X-Civio-Timestamp": request.headers["X-Civio-Timestamp"],
        "X-Civio-Signature": request.headers["X-Civio-Signature"],
    }
    assert verify(secret, headers, request.body)
    # tampered body
    assert not verify(secret, headers, request.body.replace(b"ACCEPTED", b"PROCESSED"))
    assert not verify(secret, headers, request.body + b" ")
    # tampered timestamp (the signature covers it)
    later = {**headers, "X-Civio-Timestamp": str(int(headers["X-Civio-Timestamp"]) + 1)}
    assert not verify(secret, later, request.body)
    # wrong secret, missing or foreign signature
    assert not verify("0" * 64, headers, request.body)
    assert not verify(secret, {"X-Civio-Timestamp": headers["X-Civio-Timestamp"]}, request.body)
    assert not verify(secret, {**headers, "X-Civio-Signature": "v0=abc"}, request.body)
    # a genuine request replayed after the tolerance window
    assert not verify(secret, headers, request.body, now=time.time() + 301)
    old = int(time.time()) - 3600
    replayed = {
        "X-Civio-Timestamp": str(old),
        "X-Civio-Signature": signature(secret, old, request.body),
    }
    assert not verify(secret, replayed, request.body)
    # several signatures: any v1 match is enough
    both = {**headers, "X-Civio-Signature": "v1=" + "0" * 64 + "," + headers["X-Civio-Signature"]}
    assert verify(secret, both, request.body)


@pytest.mark.parametrize(
    ("status", "headers", "low", "high"),
    [
        (503, {}, 2.5, 5.0),  # default base 5 s, jitter 50-100 %
        (429, {"Retry-After": "120"}, 120.0, 120.0),
        (429, {"Retry-After": "100000"}, 300.0, 300.0),  # capped
    ],
)
async def test_a_long_wait_sends_the_job_back_to_the_queue(
    runtime: Runtime,
    callbacks: Callbacks,
    receiver: Receiver,
    status: int,
    headers: dict[str, str],
    low: float,
    high: float,
) -> None:
    receiver.answer(status, headers=headers)
    sender, _ = await callbacks.sender(receiver.url)
    async with transaction(runtime.sessions) as session:
        await emit(
            session,
            service_id=sender.service_id,
            message_id="01JDX3Y8Q6M5V9T2C0R7K4N1PA",
            event="message.status",
            data={"status": "ACCEPTED"},
        )
    with pytest.raises(RetryRequested) as retry:
        await deliver_job(runtime, {"service_id": sender.service_id})
    assert low - 0.5 <= retry.value.delay.total_seconds() <= high
    [event] = await callbacks.events(sender.service_id)
    assert (event.status, event.attempts, event.last_response_status) == ("PENDING", 1, status)
    # Run again early: nothing is sent, the job goes back with the remaining wait.
    with pytest.raises(RetryRequested):
        await deliver_job(runtime, {"service_id": sender.service_id})
    assert len(receiver.requests) == 1


# --- serialisation ---------------------------------------------------------------------------


async def test_one_job_per_service_however_many_events(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    sender, _ = await callbacks.sender(receiver.url)
    for _ in range(3):
        await send(client, sender, random_fiscal_code())
    async with callbacks.runtime.sessions() as session:
        jobs = await session.scalar(
            text("SELECT count(*) FROM pgqueuer WHERE entrypoint = :task AND dedupe_key = :key"),
            {"task": CALLBACK_TASK, "key": dedupe_key(sender.service_id)},
        )
    assert jobs == 1
    await callbacks.drain()
    events = await callbacks.events(sender.service_id)
    assert len(events) == 6
    assert all(e.status == "DELIVERED" for e in events)
    assert [r.json()["id"] for r in receiver.requests] == [e.id for e in events]


async def test_an_event_committing_during_the_last_check_is_not_stranded(
    callbacks: Callbacks, receiver: Receiver
) -> None:
    """The delivery run's final check waits for a transaction that is emitting, then sees
    its event (it would otherwise end and leave the event without a job)."""
    sender, _ = await callbacks.sender(receiver.url)
    async with callbacks.runtime.sessions() as session, session.begin():
        await emit(
            session,
            service_id=sender.service_id,
            message_id="01JDX3Y8Q6M5V9T2C0R7K4N1PA",
            event="message.status",
            data={"status": "ACCEPTED"},
        )
        run = asyncio.create_task(deliver_pending(callbacks.fast, sender.service_id))
        await asyncio.sleep(0.3)
        assert not run.done()  # waiting for the emitting transaction
        assert receiver.requests == []
    assert await asyncio.wait_for(run, 10) is None
    assert [r.json()["status"] for r in receiver.requests] == ["ACCEPTED"]
    await callbacks.drain()  # the job emit queued finds nothing left


async def test_the_sweep_requeues_a_service_whose_job_was_lost(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    sender, _ = await callbacks.sender(receiver.url)
    await send(client, sender, random_fiscal_code())
    async with transaction(callbacks.runtime.sessions) as session:
        await session.execute(
            text("DELETE FROM pgqueuer WHERE dedupe_key = :key"),
            {"key": dedupe_key(sender.service_id)},
        )
    assert await requeue_stranded(callbacks.runtime) >= 1
    assert await requeue_stranded(callbacks.runtime) == 0  # already queued: deduplicated
    await callbacks.drain()
    assert [e.status for e in await callbacks.events(sender.service_id)] == [
        "DELIVERED",
        "DELIVERED",
    ]


async def test_emit_refuses_nested_data(callbacks: Callbacks, receiver: Receiver) -> None:
    sender, _ = await callbacks.sender(receiver.url)
    async with callbacks.runtime.sessions() as session, session.begin():
        with pytest.raises(TypeError):
            await emit(
                session,
                service_id=sender.service_id,
                message_id="m",
                event="message.status",
                data={"content": {"subject": "x"}},
            )


# --- configuration -------------------------------------------------------------------------


async def test_secret_is_shown_once_and_stored_encrypted(
    client: httpx.AsyncClient, runtime: Runtime, callbacks: Callbacks, receiver: Receiver
) -> None:
    created = await client.post(
        "/admin/v1/services",
        json={
            "name": "Tributi",
            "organization_name": "Comune di Prova",
            "organization_fiscal_code": "12345678901",
            "callback_url": receiver.url,
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    service_id, secret = body["service_id"], body["callback_secret"]
    callbacks.track(service_id)
    assert HEX64.match(secret)
    assert body["callback_url"] == receiver.url

    shown = (await client.get(f"/admin/v1/services/{service_id}", headers=ADMIN)).json()
    assert shown["callback_url"] == receiver.url
    assert "callback_secret" not in shown

    async def stored() -> bytes | None:
        async with runtime.sessions() as session:
            value = await session.scalar(
                text("SELECT callback_secret_ciphertext FROM services WHERE service_id = :sid"),
                {"sid": service_id},
            )
            return value  # type: ignore[no-any-return]

    raw = await stored()
    assert raw is not None
    assert secret.encode() not in raw
    assert bytes.fromhex(secret) not in raw
    assert runtime.keyring.open_service_secret(service_id, raw) == secret.encode()
    with pytest.raises(CryptoError):  # bound to its service
        runtime.keyring.open_service_secret("another-service", raw)

    url = f"/admin/v1/services/{service_id}"
    same = (await client.patch(url, json={"callback_url": receiver.url}, headers=ADMIN)).json()
    assert "callback_secret" not in same
    assert await stored() == raw

    moved = (
        await client.patch(url, json={"callback_url": receiver.url + "/v2"}, headers=ADMIN)
    ).json()
    assert moved["callback_url"] == receiver.url + "/v2"
    assert HEX64.match(moved["callback_secret"])
    assert moved["callback_secret"] != secret

    regenerated = await client.put(f"{url}/callback-secret", headers=ADMIN)
    assert regenerated.status_code == 200, regenerated.text
    new_secret = regenerated.json()["callback_secret"]
    assert new_secret not in (secret, moved["callback_secret"])
    raw_now = await stored()
    assert raw_now is not None
    assert runtime.keyring.open_service_secret(service_id, raw_now) == new_secret.encode()

    # Events are signed with the current secret.
    untouched = (await client.patch(url, json={"name": "Tributi 2"}, headers=ADMIN)).json()
    assert untouched["callback_url"] == receiver.url + "/v2"
    sender = Sender(service_id, "", "", "12345678901")
    async with transaction(runtime.sessions) as session:
        await emit(
            session,
            service_id=sender.service_id,
            message_id="01JDX3Y8Q6M5V9T2C0R7K4N1PA",
            event="message.status",
            data={"status": "ACCEPTED"},
        )
    await callbacks.drain()
    assert len(receiver.requests) == 1
    assert receiver.requests[0].path == "/civio/events/v2"
    assert verify(new_secret, receiver.requests[0].headers, receiver.requests[0].body)
    assert not verify(secret, receiver.requests[0].headers, receiver.requests[0].body)

    removed = (await client.patch(url, json={"callback_url": None}, headers=ADMIN)).json()
    assert "callback_url" not in removed
    assert await stored() is None
    conflict = await client.put(f"{url}/callback-secret", headers=ADMIN)
    assert conflict.status_code == 409
    assert conflict.json()["title"] == "No callback URL"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/hook",
        "https:///no-host",
        "https://user:secret@example.org/hook",
        "https://example.org/hook#frag",
        "https://exa mple.org/hook",
        "example.org/hook",
        "https://example.org:99999/hook",
        "https://example.org/" + "a" * 2048,
    ],
)
async def test_invalid_callback_urls_are_refused(client: httpx.AsyncClient, url: str) -> None:
    response = await client.post(
        "/admin/v1/services",
        json={
            "name": "X",
            "organization_name": "Y",
            "organization_fiscal_code": "12345678901",
            "callback_url": url,
        },
        headers=ADMIN,
    )
    assert response.status_code == 400, response.text
    assert response.json()["status"] == 400


def test_https_is_required_in_production(runtime: Runtime) -> None:
    production = CallbackPolicy(runtime.keyring, True, OutboundGuard(enforce=True))
    with pytest.raises(Problem) as refused:
        production.check_url("http://sender.example/hook")
    assert refused.value.status == 400
    assert "https" in refused.value.detail
    assert production.check_url("https://sender.example/hook") == "https://sender.example/hook"
    dev = CallbackPolicy(runtime.keyring, False, OutboundGuard(enforce=False))
    assert dev.check_url("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080/hook"


INTERNAL_HOSTS = {
    "127.0.0.1": "loopback",
    "10.0.0.1": "private",
    "169.254.169.254": "cloud metadata",
    "[::1]": "loopback",
    "localhost": "loopback",  # a name, resolved at registration
}


async def test_production_refuses_callback_urls_at_internal_addresses(
    settings: Settings, runtime: Runtime
) -> None:
    production = settings.model_copy(update={"env": Environment.production})
    service = {
        "name": "Callback service",
        "organization_name": "Comune di Prova",
        "organization_fiscal_code": "12345678901",
    }

    def assert_refused(response: httpx.Response, category: str) -> None:
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["title"] == "Invalid callback URL"
        assert category in problem["detail"], problem
        assert "CIVIO_OUTBOUND_ALLOWED_NETWORKS" in problem["detail"]

    async with client_with(production, runtime) as prod:
        for host, category in INTERNAL_HOSTS.items():
            url = f"https://{host}/civio/events"
            created = await prod.post(
                "/admin/v1/services", json={**service, "callback_url": url}, headers=ADMIN
            )
            assert_refused(created, category)
        plain = await prod.post("/admin/v1/services", json=service, headers=ADMIN)
        assert plain.status_code == 201, plain.text
        patched = await prod.patch(
            f"/admin/v1/services/{plain.json()['id']}",
            json={"callback_url": "https://169.254.169.254/latest/meta-data/"},
            headers=ADMIN,
        )
        assert_refused(patched, "cloud metadata")
        too_long = f"https://{'a' * 64}.example.org/hook"  # no query: it cannot be encoded
        invalid = await prod.post(
            "/admin/v1/services", json={**service, "callback_url": too_long}, headers=ADMIN
        )
        assert invalid.status_code == 400, invalid.text
        assert invalid.json()["detail"] == "The callback URL's host is not a valid host name."


async def test_a_callback_url_rebound_to_loopback_fails_at_once(
    callbacks: Callbacks, fast_runtime: Runtime, receiver: Receiver
) -> None:
    """Registered while its name resolved to a public address; by delivery the name
    resolves to loopback (DNS rebinding). The POST is refused at connection time and the
    event is FAILED after that one attempt, not retried."""
    name = "hooks.rebind.test"
    production = dataclasses.replace(
        fast_runtime,
        settings=fast_runtime.settings.model_copy(update={"env": Environment.production}),
    )
    port = receiver.url.split(":")[2].split("/")[0]
    dns = FakeDNS()
    dns.point(name, "142.250.180.10")
    with use_resolver(dns), capture_logs() as logs:
        async with transaction(production.sessions) as session:
            created = await services.create_service(
                session,
                ServiceCreate(
                    name="Callback service",
                    organization_name="Comune di Prova",
                    organization_fiscal_code="12345678901",
                    callback_url=f"https://{name}:{port}/civio/events",
                ),
                sandbox_fiscal_code=production.settings.sandbox_fiscal_code,
                callback_policy=CallbackPolicy.of(production),
            )
        callbacks.track(created.service_id)
        dns.point(name, "127.0.0.1")
        async with transaction(production.sessions) as session:
            await emit(
                session,
                service_id=created.service_id,
                message_id="01JDX3Y8Q6M5V9T2C0R7K4N1PA",
                event="message.status",
                data={"status": "ACCEPTED"},
            )
        assert await deliver_pending(production, created.service_id) is None
    [event] = await callbacks.events(created.service_id)
    assert (event.status, event.attempts, event.last_response_status) == ("FAILED", 1, None)
    assert event.last_error == (
        "DestinationRefused: refused: the host resolves to 127.0.0.1, a loopback address"
    )
    assert receiver.requests == []
    assert [e["category"] for e in logs if e["event"] == "outbound.refused"] == ["loopback"]


async def test_removing_the_url_fails_pending_events(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    sender, _ = await callbacks.sender(receiver.url)
    await send(client, sender, random_fiscal_code())
    async with transaction(callbacks.runtime.sessions) as session:
        await services.update_service(
            session,
            sender.service_id,
            ServiceUpdate(callback_url=None),
            sandbox_fiscal_code=callbacks.settings.sandbox_fiscal_code,
            callback_policy=callbacks.policy,
        )
    await callbacks.drain()
    events = await callbacks.events(sender.service_id)
    assert [(e.status, e.attempts) for e in events] == [("FAILED", 0)]  # REJECTED not recorded
    assert events[0].last_error == "callback URL removed before delivery"
    assert receiver.requests == []


# --- operators -----------------------------------------------------------------------------


async def test_admin_lists_outcomes(
    client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    receiver.answer(410)
    sender, _ = await callbacks.sender(receiver.url)
    mid = await send(client, sender, random_fiscal_code())
    await callbacks.drain()
    url = f"/admin/v1/services/{sender.service_id}/callbacks"

    listed = await client.get(url, headers=ADMIN)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(i["status"], i["payload"]["status"]) for i in items] == [
        ("DELIVERED", "REJECTED"),
        ("FAILED", "ACCEPTED"),
    ]
    failed = items[1]
    assert failed["message_id"] == mid
    assert failed["type"] == "message.status"
    assert failed["attempts"] == 1
    assert failed["last_response_status"] == 410
    assert failed["last_error"] == "HTTP 410 (not retried)"
    assert "delivered_at" not in failed
    assert "next_attempt_at" not in failed
    assert items[0]["delivered_at"].endswith("Z")

    only_failed = (await client.get(url, params={"status": "FAILED"}, headers=ADMIN)).json()
    assert [i["id"] for i in only_failed["items"]] == [failed["id"]]
    one = (await client.get(url, params={"limit": 1}, headers=ADMIN)).json()
    assert len(one["items"]) == 1
    assert (await client.get(url, params={"status": "LOST"}, headers=ADMIN)).status_code == 400
    assert (await client.get(url)).status_code == 401
    unknown = await client.get("/admin/v1/services/nope/callbacks", headers=ADMIN)
    assert unknown.status_code == 404


@pytest.fixture
def civio(settings: Settings) -> Callable[..., Any]:
    # Explicitly dev: with an external database URL alone the CLI would be production.
    env = cli_env(settings, CIVIO_ENV="dev")

    async def run(*args: str, code: int = 0, **extra_env: str) -> Any:
        # The CLI points structlog at the runner's stream, closed once it returns: put the
        # test process's logging back, or the worker's next log line would fail.
        saved = structlog.get_config()
        try:
            result = await asyncio.to_thread(
                runner.invoke, cli_app, list(args), env={**env, **extra_env}
            )
        finally:
            structlog.configure(**saved)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout) if code == 0 and "--json" in args else result.output

    return run


async def test_cli_configures_callbacks_and_shows_outcomes(
    civio: Callable[..., Any], client: httpx.AsyncClient, callbacks: Callbacks, receiver: Receiver
) -> None:
    create = (
        "service",
        "create",
        "--name",
        "Anagrafe",
        "--organization-name",
        "Comune di Prova",
        "--organization-fiscal-code",
        "12345678901",
        "--group",
        "ApiMessageWrite",
    )
    refused = await civio(
        *create, "--callback-url", "http://sender.example/hook", code=1, CIVIO_ENV="production"
    )
    assert "https" in refused
    internal = await civio(
        *create, "--callback-url", "https://127.0.0.1/hook", code=1, CIVIO_ENV="production"
    )
    assert "loopback" in internal

    created = await civio(*create, "--callback-url", receiver.url, "--json")
    service_id, secret = created["service_id"], created["callback_secret"]
    callbacks.track(service_id)
    assert HEX64.match(secret)
    assert created["callback_url"] == receiver.url
    shown = await civio("service", "show", service_id, "--json")
    assert "callback_secret" not in shown
    assert shown["callback_url"] == receiver.url

    receiver.answer(404)
    sender = Sender(service_id, created["primary_key"], created["secondary_key"], "12345678901")
    mid = await send(client, sender, random_fiscal_code())
    await callbacks.drain()

    listed = await civio("service", "callbacks", service_id, "--json")
    assert [(e["status"], e["payload"]["status"]) for e in listed] == [
        ("DELIVERED", "REJECTED"),
        ("FAILED", "ACCEPTED"),
    ]
    failed = await civio("service", "callbacks", service_id, "--status", "failed", "--json")
    assert len(failed) == 1
    assert failed[0]["message_id"] == mid
    assert failed[0]["last_response_status"] == 404
    assert failed[0]["attempts"] == 1
    table = await civio("service", "callbacks", service_id)
    assert "FAILED" in table
    assert "http=404" in table
    assert "HTTP 404 (not retried)" in table
    await civio("service", "callbacks", service_id, "--status", "LOST", code=2)
    await civio("service", "callbacks", "nope", code=1)

    regenerated = await civio("service", "callback-secret", "regenerate", service_id, "--json")
    assert HEX64.match(regenerated["callback_secret"])
    assert regenerated["callback_secret"] != secret

    await civio(
        "service", "update", service_id, "--callback-url", receiver.url, "--no-callback", code=2
    )
    removed = await civio("service", "update", service_id, "--no-callback", "--json")
    assert "callback_url" not in removed
    assert "callback_secret" not in removed
    await civio("service", "callback-secret", "regenerate", service_id, code=1)
    again = await civio("service", "update", service_id, "--callback-url", receiver.url, "--json")
    assert HEX64.match(again["callback_secret"])


async def test_channel_outcomes_follow_the_message_status(
    client: httpx.AsyncClient, factory: Factory, callbacks: Callbacks, receiver: Receiver
) -> None:
    sender, secret = await callbacks.sender(receiver.url)
    fc = await factory.citizen(email=f"{random_fiscal_code().lower()}@example.org")
    mid = await send(client, sender, fc)
    await factory.drain()  # processes, mails (Maildir), then delivers the events
    await callbacks.drain()
    events = [
        (body["type"], body.get("status"), body.get("channel"))
        for body in (r.json() for r in receiver.requests)
        if body["message_id"] == mid
    ]
    assert events == [
        ("message.status", "ACCEPTED", None),
        ("message.status", "PROCESSED", None),
        ("notification.status", "SENT", "email"),
    ]
    assert all(verify(secret, r.headers, r.body) for r in receiver.requests)
