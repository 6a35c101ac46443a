"""Faults from outside, each ending with a count: zero messages lost, zero duplicated.

The parts are real: a PostgreSQL cluster of this module's own (so stopping it disturbs no
other test), ``civio serve`` and ``civio worker`` processes on real sockets, a real SMTP
server, HTTP receivers for the push gateway and the sender's callbacks that go away and
come back on the same port, and libfaketime to move the worker's wall clock.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from civio.auth.schemas import Identity
from civio.auth.service import hash_token, open_session
from civio.callbacks.models import CallbackEvent
from civio.callbacks.service import CallbackPolicy
from civio.core.config import Environment, Settings
from civio.core.db import transaction
from civio.core.runtime import Runtime
from civio.messages.models import Message, MessageStatusChange
from civio.notifications.models import Notification, NotificationChannel
from civio.notifications.push.installations import InstallationBody, register_installation
from civio.services import service as services
from civio.services.schemas import ServiceCreate, ServiceMetadata
from tests.e2e.conftest import CIVIO, civio_env, free_port, wait_ready
from tests.e2e.faults_support import HttpReceiver, OwnPostgres, duplicates, eventually
from tests.factories import ADMIN_TOKEN, Factory, Sender, client_with, valid_message
from tests.smtp import smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("faults")]

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
FINAL_MESSAGE_STATUSES = {"PROCESSED", "REJECTED", "FAILED"}
# Short retries, so that a fault and its mending fit in seconds.
FAST_RETRIES = {
    "CIVIO_JOB_HEARTBEAT_TIMEOUT_SECONDS": "2",
    "CIVIO_NOTIFICATION_RETRY_BASE_SECONDS": "0.3",
    "CIVIO_NOTIFICATION_RETRY_MAX_SECONDS": "1",
    "CIVIO_CALLBACK_RETRY_BASE_SECONDS": "0.3",
    "CIVIO_CALLBACK_RETRY_MAX_SECONDS": "1",
    "CIVIO_CALLBACK_SWEEP_SECONDS": "1",
    "CIVIO_PROCESS_MAX_ATTEMPTS": "50",
}


# --- this module's own database, runtime and processes ----------------------------------------


@pytest.fixture(scope="module")
def own_db() -> Iterator[OwnPostgres]:
    db = OwnPostgres()
    try:
        yield db
    finally:
        db.close()


@pytest.fixture(scope="module")
def fault_settings(own_db: OwnPostgres, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        env=Environment.dev,
        database_url=own_db.url,
        data_dir=tmp_path_factory.mktemp("faults"),
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        admin_token=ADMIN_TOKEN,
        run_worker=False,
        service_cache_seconds=0.0,
        log_json=True,
    )


@pytest.fixture(scope="module")
async def fault_runtime(fault_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.build(fault_settings, pool_size=5)
    yield runtime
    await runtime.close()


@pytest.fixture
def factory(fault_runtime: Runtime, fault_settings: Settings) -> Factory:
    return Factory(fault_runtime, fault_settings)


@pytest.fixture
async def api(fault_settings: Settings, fault_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The PA API in this process (the accept path is not what these tests break)."""
    async with client_with(fault_settings, fault_runtime) as client:
        yield client


class Processes:
    """``civio`` subprocesses of one test, stopped at its end; their logs kept for failures."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{args[0]}-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [CIVIO, *args],
            env=civio_env(self.settings, **FAST_RETRIES, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        return self.start("worker", env=env)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(fault_settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    running = Processes(fault_settings, Path(os.environ.get("FAULTS_LOGS", tmp_path)))
    try:
        yield running
    finally:
        for process in running.started:
            running.stop(process)
        for log in sorted(tmp_path.glob("*.log")):  # shown by pytest when the test fails
            tail = log.read_bytes()[-4000:].decode(errors="replace")
            sys.stdout.write(f"--- {log.name} (end) ---\n{tail}\n")


# --- what the tests send and count -----------------------------------------------------------


async def send(api: httpx.AsyncClient, sender: Sender, fc: str, **message: object) -> str:
    response = await api.post(
        f"/api/v1/messages/{fc}", json={**valid_message(), **message}, headers=sender.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def channel_states(runtime: Runtime, message_ids: list[str], channel: str) -> list[str]:
    """The channel's status for each message (``None`` as "" until the first outcome)."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(NotificationChannel.status)
            .join(Notification, Notification.id == NotificationChannel.notification_id)
            .where(Notification.message_id.in_(message_ids), NotificationChannel.channel == channel)
        )
        return [status or "" for (status,) in rows]


async def notification_ids(runtime: Runtime, message_ids: list[str]) -> list[str]:
    async with runtime.sessions() as session:
        return list(
            await session.scalars(
                select(Notification.id).where(Notification.message_id.in_(message_ids))
            )
        )


async def queued_jobs_mentioning(runtime: Runtime, ids: list[str]) -> int:
    async with runtime.sessions() as session:
        payloads = await session.scalars(
            text("SELECT convert_from(payload, 'UTF8') FROM pgqueuer WHERE payload IS NOT NULL")
        )
        return sum(1 for payload in payloads if any(i in payload for i in ids))


async def citizen_with_device(factory: Factory, *, email: str | None = None) -> str:
    """A citizen with a session and one app installation (an iOS device token)."""
    fc = await factory.citizen(email=email)
    async with transaction(factory.runtime.sessions) as session:
        token = await open_session(
            session,
            factory.runtime.keyring,
            Identity(fiscal_code=fc, name="Mario", family_name="Rossi"),
            spid_level="https://www.spid.gov.it/SpidL2",
            identity_provider="test",
            ttl_seconds=3600,
        )
        await register_installation(
            session,
            factory.runtime.keyring,
            fiscal_code=fc,
            session_token_hash=hash_token(token),
            installation_id=secrets.token_hex(16),
            body=InstallationBody.model_validate(
                {"platform": "apns", "pushChannel": secrets.token_hex(32)}
            ),
        )
    return fc


async def callback_sender(factory: Factory, url: str) -> Sender:
    async with transaction(factory.runtime.sessions) as session:
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
            sandbox_fiscal_code=factory.settings.sandbox_fiscal_code,
            callback_policy=CallbackPolicy.of(factory.runtime),
        )
    assert created.primary_key
    assert created.secondary_key
    return Sender(created.service_id, created.primary_key, created.secondary_key, "12345678901")


async def service_events(runtime: Runtime, service_id: str) -> list[CallbackEvent]:
    async with runtime.sessions() as session:
        return list(
            await session.scalars(
                select(CallbackEvent)
                .where(CallbackEvent.service_id == service_id)
                .order_by(CallbackEvent.id)
            )
        )


# --- PostgreSQL restarted under load -----------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    status: int
    message_id: str | None
    content_type: str
    retry_after: str | None


async def test_postgres_restarted_under_load_answers_503_then_recovers_losing_nothing(
    own_db: OwnPostgres, factory: Factory, processes: Processes
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = processes.start(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-worker",
        env={"CIVIO_RATE_LIMIT_CALLS": "1000000"},
    )
    worker = processes.worker()
    wait_ready(url, server, timeout=120)  # a loaded machine starts processes slowly
    sender = await factory.sender()
    citizens = [await factory.citizen() for _ in range(4)]

    submitted: list[Submitted] = []
    stop = asyncio.Event()

    async def submit(http: httpx.AsyncClient, fc: str) -> None:
        while not stop.is_set():
            # A hang past this bound fails the test (httpx raises ReadTimeout).
            response = await http.post(
                f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers
            )
            body = response.json()
            submitted.append(
                Submitted(
                    response.status_code,
                    body.get("id") if response.status_code == 201 else None,
                    response.headers.get("content-type", ""),
                    response.headers.get("retry-after"),
                )
            )
            if response.status_code != 201:
                await asyncio.sleep(0.05)  # a real client would wait Retry-After

    def count(status: int) -> int:
        return sum(1 for s in submitted if s.status == status)

    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        clients = [asyncio.create_task(submit(http, fc)) for fc in citizens]
        try:
            await eventually(lambda: count(201) >= 20, "messages accepted before")
            await asyncio.to_thread(own_db.stop)
            await eventually(lambda: count(503) >= 5, "503 while the database is down")
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            await asyncio.to_thread(own_db.start)
            accepted_before = count(201)
            await eventually(
                lambda: count(201) >= accepted_before + 20, "accepting again by itself"
            )
        finally:
            stop.set()
            await asyncio.gather(*clients)
        assert (await http.get("/readyz")).status_code == 200

    statuses = {s.status for s in submitted}
    assert statuses == {201, 503}, statuses  # never a 500
    for answer in (s for s in submitted if s.status == 503):
        assert answer.content_type.startswith("application/problem+json")
        assert answer.retry_after is not None
        assert answer.retry_after.isdigit()

    accepted = [s.message_id for s in submitted if s.message_id is not None]
    assert not duplicates(accepted)
    await factory.runtime.engine.dispose()  # this process's pool saw the restart too
    async with factory.runtime.sessions() as session:
        stored = list(
            await session.scalars(
                select(Message.id).where(Message.sender_service_id == sender.service_id)
            )
        )
    # Every 201 is stored once; no 503 left a message behind.
    assert sorted(stored) == sorted(accepted)

    async def all_final() -> bool:
        async with factory.runtime.sessions() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(
                    Message.sender_service_id == sender.service_id,
                    Message.status.not_in(FINAL_MESSAGE_STATUSES),
                )
            )
        return pending == 0

    await eventually(all_final, "every accepted message processed", timeout=60)
    async with factory.runtime.sessions() as session:
        outcomes = dict(
            (
                await session.execute(
                    select(Message.status, func.count())
                    .where(Message.sender_service_id == sender.service_id)
                    .group_by(Message.status)
                )
            ).all()
        )
        changes = await session.scalar(
            select(func.count())
            .select_from(MessageStatusChange)
            .where(MessageStatusChange.message_id.in_(accepted))
        )
    assert outcomes == {"PROCESSED": len(accepted)}
    assert changes == len(accepted)  # one outcome each, none recorded twice
    assert worker.poll() is None, "the worker died with the database"
    assert server.poll() is None


# --- SMTP, push gateway and callback receiver down and back ------------------------------------


async def test_smtp_down_and_back_delivers_each_email_once(
    api: httpx.AsyncClient, factory: Factory, processes: Processes
) -> None:
    port = free_port()
    processes.worker(CIVIO_SMTP_URL=f"smtp://127.0.0.1:{port}")
    sender = await factory.sender()
    addresses = [f"citizen-{secrets.token_hex(4)}@example.org" for _ in range(4)]
    with smtp_server(port=port) as smtp:
        # Up: the first alert goes through.
        first_fc = await factory.citizen(email=addresses[0])
        first = await send(api, sender, first_fc)

        async def first_sent() -> bool:
            return await channel_states(factory.runtime, [first], "EMAIL") == ["SENT"]

        await eventually(first_sent, "the first email sent")
    # Down: the others are throttled, and retried.
    message_ids = [first]
    for address in addresses[1:]:
        message_ids.append(await send(api, sender, await factory.citizen(email=address)))

    async def throttled() -> bool:
        states = await channel_states(factory.runtime, message_ids[1:], "EMAIL")
        return len(states) == len(addresses) - 1 and set(states) == {"THROTTLED"}

    await eventually(throttled, "the emails THROTTLED while SMTP is down")
    # Back, on the same port.
    with smtp_server(port=port) as smtp_again:

        async def all_sent() -> bool:
            return set(await channel_states(factory.runtime, message_ids, "EMAIL")) == {"SENT"}

        await eventually(all_sent, "every email SENT once SMTP is back")
        received = [*smtp.capture.received, *smtp_again.capture.received]
    for address in addresses:
        assert len([r for r in received if address in r.rcpt_tos]) == 1, address
    assert not duplicates([str(r.message["Message-ID"]) for r in received])


async def test_push_gateway_down_and_back_pushes_each_message_once(
    api: httpx.AsyncClient, factory: Factory, processes: Processes
) -> None:
    gateway = HttpReceiver()  # down: nothing listens on its port yet
    processes.worker(CIVIO_PUSH_GATEWAY_URL=gateway.url("/api/push"))
    sender = await factory.sender()
    message_ids = [await send(api, sender, await citizen_with_device(factory)) for _ in range(3)]

    async def throttled() -> bool:
        states = await channel_states(factory.runtime, message_ids, "WEBHOOK")
        return len(states) == len(message_ids) and set(states) == {"THROTTLED"}

    await eventually(throttled, "the pushes THROTTLED while the gateway is down")
    gateway.start()
    try:

        async def all_sent() -> bool:
            states = await channel_states(factory.runtime, message_ids, "WEBHOOK")
            return set(states) == {"SENT"}

        await eventually(all_sent, "every push SENT once the gateway is back")
        await asyncio.sleep(1)  # a duplicate would arrive within a retry interval
        pushed = [
            entry["notif_id"] for body in gateway.json_bodies() for entry in body["notifications"]
        ]
    finally:
        gateway.stop()
    expected = await notification_ids(factory.runtime, message_ids)
    assert sorted(pushed) == sorted(f"{n}-webhook" for n in expected)


async def test_callback_receiver_down_and_back_gets_every_event_once_in_order(
    api: httpx.AsyncClient, factory: Factory, processes: Processes
) -> None:
    receiver = HttpReceiver().start()
    sender = await callback_sender(factory, receiver.url("/civio/events"))
    processes.worker()
    fc = await factory.citizen()
    message_ids = [await send(api, sender, fc)]

    async def delivered(n: int) -> bool:
        events = await service_events(factory.runtime, sender.service_id)
        return len(events) >= n and all(e.status == "DELIVERED" for e in events)

    await eventually(lambda: delivered(2), "ACCEPTED and PROCESSED delivered while up")
    receiver.stop()
    message_ids += [await send(api, sender, fc) for _ in range(3)]

    async def retried_while_down() -> bool:
        events = await service_events(factory.runtime, sender.service_id)
        return any(e.status == "PENDING" and e.attempts >= 2 for e in events)

    await eventually(retried_while_down, "an event retried while the receiver is down")
    receiver.start()
    try:
        await eventually(lambda: delivered(2 * len(message_ids)), "every event delivered")
        await asyncio.sleep(1)
        received = [body["id"] for body in receiver.json_bodies()]
    finally:
        receiver.stop()
    events = await service_events(factory.runtime, sender.service_id)
    assert len(events) == 2 * len(message_ids)  # ACCEPTED and PROCESSED of each
    assert received == [e.id for e in events]  # each once, in order


async def test_a_receiver_slower_than_the_timeout_is_retried_and_counted_once(
    api: httpx.AsyncClient, factory: Factory, processes: Processes
) -> None:
    receiver = HttpReceiver().start()
    receiver.delay = 3.0  # longer than the 1 s callback timeout below
    sender = await callback_sender(factory, receiver.url("/civio/events"))
    processes.worker(CIVIO_CALLBACK_TIMEOUT_SECONDS="1", CIVIO_CALLBACK_MAX_ATTEMPTS="50")
    fc = await factory.citizen()
    message_ids = [await send(api, sender, fc) for _ in range(2)]

    async def timed_out_twice() -> bool:
        events = await service_events(factory.runtime, sender.service_id)
        return any(e.attempts >= 2 and e.status == "PENDING" for e in events)

    try:
        await eventually(timed_out_twice, "the slow receiver's event retried")
        receiver.delay = 0.0

        async def all_delivered() -> bool:
            events = await service_events(factory.runtime, sender.service_id)
            return len(events) == 2 * len(message_ids) and all(
                e.status == "DELIVERED" for e in events
            )

        await eventually(all_delivered, "every event delivered once the receiver is quick")
        await asyncio.sleep(1)
        received = [body["id"] for body in receiver.json_bodies()]
    finally:
        receiver.stop()
    events = await service_events(factory.runtime, sender.service_id)
    # At least once: the receiver saw the slow event more than once (civio could not know
    # it had been received), but every distinct event exactly as stored, first seen in order.
    first_seen = list(dict.fromkeys(received))
    assert first_seen == [e.id for e in events]
    assert len(received) > len(first_seen)
    assert all(e.last_response_status == 200 for e in events)


async def test_a_slow_receiver_past_the_attempts_fails_each_event_once(
    api: httpx.AsyncClient, factory: Factory, processes: Processes
) -> None:
    receiver = HttpReceiver().start()
    receiver.delay = 2.0
    sender = await callback_sender(factory, receiver.url("/civio/events"))
    processes.worker(CIVIO_CALLBACK_TIMEOUT_SECONDS="0.5", CIVIO_CALLBACK_MAX_ATTEMPTS="2")
    message_id = await send(api, sender, await factory.citizen())

    async def all_failed() -> bool:
        events = await service_events(factory.runtime, sender.service_id)
        return len(events) == 2 and all(e.status == "FAILED" for e in events)

    try:
        await eventually(all_failed, "both events FAILED after their attempts")
        received = [body["id"] for body in receiver.json_bodies()]
    finally:
        receiver.stop()
    events = await service_events(factory.runtime, sender.service_id)
    assert [e.attempts for e in events] == [2, 2]
    assert sorted(received) == sorted([e.id for e in events] * 2)
    async with factory.runtime.sessions() as session:
        status = await session.scalar(select(Message.status).where(Message.id == message_id))
    assert status == "PROCESSED"  # a sender's broken endpoint never holds a message back


# --- the clock jumping forward past the time-to-live -------------------------------------------


async def test_a_clock_jump_past_the_ttl_expires_undelivered_alerts_without_sending(
    api: httpx.AsyncClient, factory: Factory, processes: Processes, tmp_path: Path
) -> None:
    assert LIBFAKETIME.exists(), "libfaketime is needed (apt-get install faketime)"
    smtp_port = free_port()
    gateway = HttpReceiver()  # both channels down
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    processes.worker(
        CIVIO_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        CIVIO_PUSH_GATEWAY_URL=gateway.url("/api/push"),
        LD_PRELOAD=str(LIBFAKETIME),
        FAKETIME_TIMESTAMP_FILE=str(clock),
        FAKETIME_NO_CACHE="1",
        # The wall clock jumps (as an NTP step would); timers keep their steady pace.
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    sender = await factory.sender()
    message_ids = []
    for _ in range(3):
        fc = await citizen_with_device(factory, email=f"c-{secrets.token_hex(4)}@example.org")
        message_ids.append(await send(api, sender, fc, time_to_live=3600))

    async def throttled() -> bool:
        email = await channel_states(factory.runtime, message_ids, "EMAIL")
        push = await channel_states(factory.runtime, message_ids, "WEBHOOK")
        return set(email) == {"THROTTLED"} and set(push) == {"THROTTLED"}

    await eventually(throttled, "alerts THROTTLED while SMTP and the gateway are down")
    # Past every message's hour of life. The receivers stay down until every channel has
    # been tried again after the jump: an attempt that began before it may still be on its
    # way, and one that began within the time to live is allowed to deliver.
    clock.write_text("+2h\n")

    async def expired() -> bool:
        email = await channel_states(factory.runtime, message_ids, "EMAIL")
        push = await channel_states(factory.runtime, message_ids, "WEBHOOK")
        return email == ["EXPIRED"] * 3 and push == ["EXPIRED"] * 3

    await eventually(expired, "every alert EXPIRED after the jump")
    with smtp_server(port=smtp_port) as smtp:
        gateway.start()
        try:
            await asyncio.sleep(3)  # a retry still queued (at most 1 s away) would run now
            assert smtp.capture.received == []
            assert gateway.bodies == []
        finally:
            gateway.stop()
    assert await channel_states(factory.runtime, message_ids, "EMAIL") == ["EXPIRED"] * 3
    assert (
        await queued_jobs_mentioning(
            factory.runtime, await notification_ids(factory.runtime, message_ids)
        )
        == 0
    )
