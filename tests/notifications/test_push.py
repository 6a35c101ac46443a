"""Push alerts for new messages, through real HTTP receivers (issue: notifications).

A gorush-compatible gateway and a Web Push service are aiohttp servers on a free local port.
The Web Push subscription is a real browser-like key pair, so the receiver checks the VAPID
signature and decrypts the aes128gcm body exactly as a browser would
(io-citizen-api.md §1.6, §2 step 6, §7 items 24-25).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import secrets
import socket
import stat
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import http_ece  # type: ignore[import-untyped]
import httpx
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid  # type: ignore[import-untyped]
from sqlalchemy import select, text, update
from structlog.testing import capture_logs

from civio.core.config import Environment, Settings
from civio.core.db import transaction
from civio.core.languages import citizen_language
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.core.ssrf import use_resolver
from civio.messages.models import Message
from civio.messages.pipeline import process_message
from civio.notifications.models import Installation, Notification, NotificationChannel
from civio.notifications.push import providers
from civio.notifications.push.delivery import push_texts, send_push_job
from civio.notifications.push.installations import parse_subscription
from civio.notifications.push.providers import load_vapid, topic_for, vapid_public_key
from civio.services import service as services
from civio.services.schemas import ServiceUpdate
from tests.core.fake_dns import FakeDNS
from tests.factories import Factory, Sender, client_with, login, valid_message
from tests.factories import open_citizen as open_citizen_with

INSTALLATIONS = "/api/communication/v1/installations"
ANONYMOUS_IT = ("Hai un nuovo messaggio", "Entra nell'app per leggerlo")
ANONYMOUS_EN = ("You have a new message", "Open the app to read it")
ANONYMOUS_DE = ("Sie haben eine neue Nachricht", "Öffnen Sie die App, um sie zu lesen")


# --- receivers -------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server that records every request and answers scripted statuses (then 200)."""

    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    default_status: int = 200
    # Called on each request, before answering (to look at civio's state mid-delivery).
    on_request: Callable[[], Awaitable[None]] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        if self.on_request is not None:
            await self.on_request()
        status = self.statuses.popleft() if self.statuses else self.default_status
        return web.Response(status=status, text="{}", content_type="application/json")


async def serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    receiver.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway() -> AsyncIterator[Receiver]:
    async for receiver in serve(Receiver()):
        yield receiver


@pytest.fixture
async def push_service() -> AsyncIterator[Receiver]:
    async for receiver in serve(Receiver(default_status=201)):
        yield receiver


@pytest.fixture
def push_runtime(runtime: Runtime, settings: Settings, gateway: Receiver) -> Runtime:
    """The worker's runtime: the local gateway, and retries far enough not to run by
    themselves (a test runs the retry explicitly)."""
    return dataclasses.replace(
        runtime,
        settings=settings.model_copy(
            update={
                "push_gateway_url": f"{gateway.base_url}/api/push",
                "notification_retry_base_seconds": 60.0,
            }
        ),
    )


# --- a browser --------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Browser:
    """A PushSubscription as a browser makes it: a P-256 key pair and a 16-byte secret."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    @property
    def subscription(self) -> str:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        keys = {"p256dh": b64url(public), "auth": b64url(self.auth)}
        return orjson.dumps(
            {"endpoint": self.endpoint, "expirationTime": None, "keys": keys}
        ).decode()

    def decrypt(self, body: bytes) -> Any:
        plain = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm"
        )
        return orjson.loads(plain)


def browser_for(push_service: Receiver) -> Browser:
    return Browser(f"{push_service.base_url}/wpush/v2/{secrets.token_urlsafe(24)}")


# --- helpers ----------------------------------------------------------------------------------


async def open_citizen(
    client: httpx.AsyncClient,
    settings: Settings,
    *,
    content_type: str | None = "FULL",
    languages: list[str] | None = None,
    fiscal_code: str | None = None,
) -> tuple[str, dict[str, str]]:
    """A citizen with inbox and webhook on and the push content type chosen."""
    fields: dict[str, Any] = {}
    if content_type is not None:
        fields["push_notifications_content_type"] = content_type
    if languages is not None:
        fields["preferred_languages"] = languages
    return await open_citizen_with(client, settings, fiscal_code, **fields)


async def register(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    platform: str,
    channel: str,
    installation_id: str | None = None,
) -> str:
    installation_id = installation_id or secrets.token_hex(16)
    response = await client.put(
        f"{INSTALLATIONS}/{installation_id}",
        json={"platform": platform, "pushChannel": channel},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"message": "ok"}
    return installation_id


def device_token() -> str:
    return secrets.token_hex(32)


async def send_message(
    client: httpx.AsyncClient, sender: Sender, fc: str, subject: str = "Your permit is ready"
) -> str:
    response = await client.post(
        f"/api/v1/messages/{fc}", json=valid_message(subject=subject), headers=sender.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def webhook_status(
    client: httpx.AsyncClient, sender: Sender, fc: str, message_id: str
) -> str | None:
    response = await client.get(f"/api/v1/messages/{fc}/{message_id}", headers=sender.headers)
    assert response.status_code == 200, response.text
    notification = response.json().get("notification") or {}
    return notification.get("webhook")


async def channel_row(runtime: Runtime, message_id: str) -> NotificationChannel:
    async with runtime.sessions() as session:
        row = await session.scalar(
            select(NotificationChannel)
            .join(Notification, Notification.id == NotificationChannel.notification_id)
            .where(Notification.message_id == message_id, NotificationChannel.channel == "WEBHOOK")
        )
        assert row is not None
        return row


async def forget_push_jobs(runtime: Runtime, notification_id: str) -> int:
    """Delete a notification's queued push jobs, so no later drain waits for them."""
    async with transaction(runtime.sessions) as session:
        result = await session.execute(
            text(
                "DELETE FROM pgqueuer WHERE entrypoint = 'notifications.send_push' "
                "AND convert_from(payload, 'UTF8') LIKE :id"
            ),
            {"id": f"%{notification_id}%"},
        )
    return int(getattr(result, "rowcount", 0))


async def drain(runtime: Runtime) -> None:
    await Worker(runtime).run(drain=True)


def gateway_entries(gateway: Receiver) -> list[dict[str, Any]]:
    [request] = gateway.received
    assert request.path == "/api/push"
    assert request.headers["Content-Type"].startswith("application/json")
    entries: list[dict[str, Any]] = request.json()["notifications"]
    return entries


# --- the installation route --------------------------------------------------------------------


async def test_installation_is_stored_encrypted_and_bound_to_the_session(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime, push_service: Receiver
) -> None:
    fc, headers = await login(client, settings)
    token = device_token()
    browser = browser_for(push_service)
    apns_id = await register(client, headers, "apns", token)
    web_id = await register(client, headers, "webpush", browser.subscription)
    async with runtime.sessions() as session:
        rows = {
            row.installation_id: row
            for row in await session.scalars(
                select(Installation).where(Installation.fiscal_code == fc)
            )
        }
        # The table as an operator (or a dump) sees it.
        raw = (
            await session.scalars(
                text("SELECT row_to_json(i)::text FROM installations i WHERE fiscal_code = :fc"),
                {"fc": fc},
            )
        ).all()
    assert set(rows) == {apns_id, web_id}
    assert rows[apns_id].platform == "apns"
    assert rows[web_id].platform == "webpush"
    assert rows[apns_id].session_token_hash == rows[web_id].session_token_hash is not None
    endpoint_secret = browser.endpoint.rsplit("/", 1)[1]
    for clear in (token, endpoint_secret, "p256dh", "127.0.0.1"):
        assert all(clear not in row for row in raw)
        assert all(clear.encode() not in r.push_channel_ciphertext for r in rows.values())


@pytest.mark.parametrize(
    ("path", "body", "title"),
    [
        ("abc", {"platform": "gcm", "pushChannel": "x"}, "Invalid Installation"),
        ("abc", {"platform": "apns"}, "Invalid Installation"),
        ("abc", {"platform": "apns", "pushChannel": ""}, "Invalid Installation"),
        ("abc", {"platform": "apns", "pushChannel": "a b"}, "Invalid Installation"),
        ("abc", {"platform": "webpush", "pushChannel": "not json"}, "Invalid Installation"),
        (
            "abc",
            {"platform": "webpush", "pushChannel": '{"endpoint": "https://push.example/x"}'},
            "Invalid Installation",
        ),
        (
            "abc",
            {
                "platform": "webpush",
                "pushChannel": orjson.dumps(
                    {"endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "B"}}
                ).decode(),
            },
            "Invalid Installation",
        ),
        ("a" * 129, {"platform": "apns", "pushChannel": "tok"}, "Invalid installationID"),
        ("a.b", {"platform": "apns", "pushChannel": "tok"}, "Invalid installationID"),
    ],
)
async def test_bad_installations_are_400(
    client: httpx.AsyncClient, settings: Settings, path: str, body: dict[str, Any], title: str
) -> None:
    _, headers = await login(client, settings)
    response = await client.put(f"{INSTALLATIONS}/{path}", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == title


async def test_installation_needs_a_session(client: httpx.AsyncClient) -> None:
    response = await client.put(
        f"{INSTALLATIONS}/abc", json={"platform": "apns", "pushChannel": "tok"}
    )
    assert response.status_code == 401
    assert response.content == b""


def test_a_browser_subscription_is_checked_and_normalized() -> None:
    browser = Browser("https://push.example/abc")
    parsed = parse_subscription(browser.subscription)
    assert parsed.endpoint == "https://push.example/abc"
    assert parsed.is_https
    assert "expirationTime" not in parsed.to_json()
    with pytest.raises(ValueError, match="endpoint"):
        parse_subscription(orjson.dumps({"endpoint": "ftp://x/y", "keys": {}}).decode())


async def test_production_refuses_a_plain_http_web_push_endpoint(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime, push_service: Receiver
) -> None:

    _, headers = await login(client, settings)  # test-login is dev only: log in there
    production = settings.model_copy(update={"env": Environment.production})
    async with client_with(production, runtime) as prod:
        response = await prod.put(
            f"{INSTALLATIONS}/browser1",
            json={"platform": "webpush", "pushChannel": browser_for(push_service).subscription},
            headers=headers,
        )
        assert response.status_code == 400
        assert response.json()["title"] == "Invalid Installation"
        assert "https" in response.json()["detail"]
        key = await prod.get("/api/communication/v1/installations-webpush-key", headers=headers)
        assert key.status_code == 404  # no VAPID key configured in production


INTERNAL_HOSTS = {
    "127.0.0.1": "loopback",
    "10.0.0.1": "private",
    "169.254.169.254": "cloud metadata",
    "[::1]": "loopback",
    "localhost": "loopback",  # a name, resolved at registration
}


async def test_production_refuses_web_push_endpoints_at_internal_addresses(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    _, headers = await login(client, settings)  # test-login is dev only: log in there
    production = settings.model_copy(update={"env": Environment.production})
    async with client_with(production, runtime) as prod:
        for host, category in INTERNAL_HOSTS.items():
            browser = Browser(f"https://{host}/wpush/v2/{secrets.token_urlsafe(8)}")
            response = await prod.put(
                f"{INSTALLATIONS}/{secrets.token_hex(8)}",
                json={"platform": "webpush", "pushChannel": browser.subscription},
                headers=headers,
            )
            assert response.status_code == 400, (host, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["title"] == "Invalid Installation"
            assert category in problem["detail"], problem
            assert "public addresses" in problem["detail"]


async def test_a_web_push_endpoint_rebound_to_loopback_fails_without_retry(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    runtime: Runtime,
    push_service: Receiver,
) -> None:
    """Registered while its name resolved to a public address; by delivery the name
    resolves to loopback (DNS rebinding). The push is refused at connection time: FAILED
    at once, never retried, and logged without the endpoint."""
    name = "push.rebind.test"
    vapid_key = providers._raw_private_key(ec.generate_private_key(ec.SECP256R1()))
    production = settings.model_copy(
        update={
            "env": Environment.production,
            "vapid_private_key": vapid_key,
            "notification_retry_base_seconds": 60.0,
        }
    )
    prod_runtime = dataclasses.replace(runtime, settings=production)
    fc, headers = await open_citizen(client, settings)
    port = push_service.base_url.rsplit(":", 1)[1]
    browser = Browser(f"https://{name}:{port}/wpush/v2/{secrets.token_urlsafe(24)}")
    dns = FakeDNS()
    dns.point(name, "142.250.180.10")
    with use_resolver(dns), capture_logs() as logs:
        async with client_with(production, runtime) as prod:
            await register(prod, headers, "webpush", browser.subscription)
        dns.point(name, "127.0.0.1")
        sender = await factory.sender()
        message_id = await send_message(client, sender, fc)
        assert await process_message(prod_runtime, message_id, fc) == "PROCESSED"
        notification_id = (await channel_row(runtime, message_id)).notification_id
        await send_push_job(prod_runtime, {"notification_id": notification_id})
    row = await channel_row(runtime, message_id)
    assert row.status == "FAILED"
    assert row.last_error == "web push endpoint refused: loopback address"
    assert push_service.received == []
    assert await forget_push_jobs(runtime, notification_id) == 1  # the one run; no retry
    assert [e["category"] for e in logs if e["event"] == "outbound.refused"] == ["loopback"]
    assert name not in str(logs)
    assert fc not in str(logs)


async def test_a_second_citizen_takes_the_device_over(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    gateway: Receiver,
) -> None:
    first, first_headers = await open_citizen(client, settings)
    second, second_headers = await open_citizen(client, settings)
    device = secrets.token_hex(8)
    await register(client, first_headers, "apns", device_token(), device)
    second_token = device_token()
    await register(client, second_headers, "fcmv1", second_token, device)
    async with push_runtime.sessions() as session:
        row = await session.get_one(Installation, device)
        assert row.fiscal_code == second
        assert row.platform == "fcmv1"
    sender = await factory.sender()
    to_first = await send_message(client, sender, first)
    await drain(push_runtime)
    assert gateway.received == []
    assert await webhook_status(client, sender, first, to_first) is None  # no device: no push
    to_second = await send_message(client, sender, second)
    await drain(push_runtime)
    [entry] = gateway_entries(gateway)
    assert entry["tokens"] == [second_token]
    assert entry["data"] == {"message_id": to_second}
    assert await webhook_status(client, sender, second, to_second) == "SENT"


async def test_logout_removes_only_that_sessions_installations(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime
) -> None:
    fc, phone = await login(client, settings)
    _, tablet = await login(client, settings, fc)
    phone_id = await register(client, phone, "apns", device_token())
    tablet_id = await register(client, tablet, "fcmv1", device_token())
    response = await client.post("/api/auth/v1/logout", headers=phone)
    assert response.status_code == 200
    async with runtime.sessions() as session:
        assert await session.get(Installation, phone_id) is None
        assert await session.get(Installation, tablet_id) is not None


async def test_the_web_push_key_is_the_vapid_public_key(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, headers = await login(client, settings)
    response = await client.get("/api/communication/v1/installations-webpush-key", headers=headers)
    assert response.status_code == 200
    vapid = load_vapid(settings)
    assert vapid is not None
    assert response.json() == {"applicationServerKey": vapid_public_key(vapid)}


def test_the_dev_vapid_key_is_generated_once(settings: Settings, tmp_path: Any) -> None:
    dev = settings.model_copy(update={"data_dir": tmp_path, "vapid_private_key": ""})
    first = load_vapid(dev)
    path = tmp_path / "vapid.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    providers._vapid_cache.clear()
    again = load_vapid(dev)
    assert first is not None
    assert again is not None
    assert vapid_public_key(first) == vapid_public_key(again)
    production = dev.model_copy(update={"env": Environment.production, "data_dir": tmp_path / "p"})
    assert load_vapid(production) is None
    configured = production.model_copy(update={"vapid_private_key": path.read_text()})
    loaded = load_vapid(configured)
    assert loaded is not None
    assert vapid_public_key(loaded) == vapid_public_key(first)


# --- texts -------------------------------------------------------------------------------------


def test_texts_follow_io() -> None:
    verbose: dict[str, Any] = {
        "content_type": "FULL",
        "active_session": True,
        "secure_service": False,
        "organization_name": "Comune di Prova",
        "subject": "Your permit is ready",
        "preferred_languages": ["de_DE"],
    }
    assert push_texts(**verbose) == ("Comune di Prova", "Your permit is ready")
    for change in (
        {"content_type": None},
        {"content_type": "ANONYMOUS"},
        {"active_session": False},
        {"secure_service": True},
    ):
        assert push_texts(**{**verbose, **change}) == ANONYMOUS_DE
    assert citizen_language(None) == "it"
    assert citizen_language(["fr_FR", "en_GB", "it_IT"]) == "en"
    assert citizen_language(["es_ES"]) == "it"


# --- delivery ----------------------------------------------------------------------------------


async def test_a_full_profile_gets_a_verbose_web_push(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    push_service: Receiver,
) -> None:
    fc, headers = await open_citizen(client, settings)
    browser = browser_for(push_service)
    await register(client, headers, "webpush", browser.subscription)
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc, subject="Tassa rifiuti 2026")
    await drain(push_runtime)

    [request] = push_service.received
    assert request.path == "/" + browser.endpoint.split("/", 3)[3]
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert 3500 < int(request.headers["TTL"]) <= 3600
    row = await channel_row(push_runtime, message_id)
    assert request.headers["Topic"] == topic_for(f"{row.notification_id}-webhook")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", request.headers["Topic"])  # RFC 8030 §5.4
    # VAPID (RFC 8292): signed by civio's key, for this push service's origin.
    authorization = request.headers["Authorization"]
    assert Vapid.verify(authorization)
    vapid = load_vapid(push_runtime.settings)
    assert vapid is not None
    params = dict(part.split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    assert params["k"] == vapid_public_key(vapid)
    claims_part = params["t"].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    assert claims["aud"] == push_service.base_url
    assert claims["sub"].startswith("mailto:")
    # The browser decrypts what civio encrypted for it.
    assert browser.decrypt(request.body) == {
        "title": "Comune di Prova",
        "body": "Tassa rifiuti 2026",
        "message_id": message_id,
    }
    assert await webhook_status(client, sender, fc, message_id) == "SENT"


async def test_the_gateway_gets_one_gorush_request_for_every_app_device(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    gateway: Receiver,
) -> None:
    fc, headers = await open_citizen(client, settings)
    iphone, android = device_token(), device_token()
    await register(client, headers, "apns", iphone)
    await register(client, headers, "fcmv1", android)
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    await drain(push_runtime)

    row = await channel_row(push_runtime, message_id)
    dedup = f"{row.notification_id}-webhook"
    ios, fcm = sorted(gateway_entries(gateway), key=lambda e: int(e["platform"]))
    common = {
        "title": "Comune di Prova",
        "message": "Your permit is ready",
        "data": {"message_id": message_id},
        "priority": "high",
        "notif_id": dedup,
    }
    assert ios == {
        **common,
        "tokens": [iphone],
        "platform": 1,
        "push_type": "alert",
        "collapse_id": dedup,
        "expiration": ios["expiration"],
    }
    assert fcm == {
        **common,
        "tokens": [android],
        "platform": 2,
        "collapse_key": dedup,
        "time_to_live": fcm["time_to_live"],
        "notification": {"tag": dedup},
    }
    assert 3500 < fcm["time_to_live"] <= 3600
    assert row.status == "SENT"
    assert row.attempts == 1


async def test_a_service_requiring_secure_channels_gets_the_anonymous_text(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    runtime: Runtime,
    push_runtime: Runtime,
    gateway: Receiver,
) -> None:
    fc, headers = await open_citizen(client, settings)
    await register(client, headers, "apns", device_token())
    sender = await factory.sender()
    async with transaction(runtime.sessions) as session:
        await services.update_service(
            session,
            sender.service_id,
            ServiceUpdate(require_secure_channels=True),
            sandbox_fiscal_code=settings.sandbox_fiscal_code,
        )
    message_id = await send_message(client, sender, fc)
    await drain(push_runtime)
    [entry] = gateway_entries(gateway)
    assert (entry["title"], entry["message"]) == ANONYMOUS_IT
    assert entry["data"] == {"message_id": message_id}
    assert "Comune di Prova" not in gateway.received[0].body.decode()
    assert await webhook_status(client, sender, fc, message_id) == "SENT"


@pytest.mark.parametrize(
    ("content_type", "languages", "expected"),
    [
        (None, None, ANONYMOUS_IT),
        ("ANONYMOUS", ["it_IT"], ANONYMOUS_IT),
        ("ANONYMOUS", ["de_DE", "en_GB"], ANONYMOUS_DE),
        (None, ["fr_FR", "en_GB"], ANONYMOUS_EN),
    ],
)
async def test_anonymous_or_unset_gets_the_anonymous_text_in_the_citizens_language(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    push_service: Receiver,
    content_type: str | None,
    languages: list[str] | None,
    expected: tuple[str, str],
) -> None:
    fc, headers = await open_citizen(
        client, settings, content_type=content_type, languages=languages
    )
    browser = browser_for(push_service)
    await register(client, headers, "webpush", browser.subscription)
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    await drain(push_runtime)
    [request] = push_service.received
    assert browser.decrypt(request.body) == {
        "title": expected[0],
        "body": expected[1],
        "message_id": message_id,
    }


async def test_a_400_from_the_gateway_fails_without_retry(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    gateway: Receiver,
) -> None:
    gateway.statuses.append(400)
    fc, headers = await open_citizen(client, settings)
    await register(client, headers, "apns", device_token())
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    await drain(push_runtime)
    assert await webhook_status(client, sender, fc, message_id) == "FAILED"
    row = await channel_row(push_runtime, message_id)
    assert row.attempts == 1
    assert row.last_error == "push gateway answered 400"
    async with push_runtime.sessions() as session:
        pending = await session.scalar(
            text(
                "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'notifications.send_push' "
                "AND convert_from(payload, 'UTF8') LIKE :id"
            ),
            {"id": f"%{row.notification_id}%"},
        )
    assert pending == 0
    assert len(gateway.received) == 1


async def test_a_500_is_throttled_then_sent_with_the_same_collapse_key(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    gateway: Receiver,
) -> None:
    quick = dataclasses.replace(
        push_runtime,
        settings=push_runtime.settings.model_copy(update={"notification_retry_base_seconds": 0.05}),
    )
    fc, headers = await open_citizen(client, settings)
    await register(client, headers, "fcmv1", device_token())
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    seen: list[str | None] = []

    async def status_when_asked() -> None:
        seen.append(await webhook_status(client, sender, fc, message_id))

    gateway.statuses.append(500)
    gateway.on_request = status_when_asked
    await drain(quick)  # runs the first attempt and, once due, the retry
    assert seen == [None, "THROTTLED"]
    assert await webhook_status(client, sender, fc, message_id) == "SENT"
    row = await channel_row(push_runtime, message_id)
    assert row.attempts == 2
    assert row.last_error is None
    first, second = (r.json()["notifications"][0] for r in gateway.received)
    assert first["collapse_key"] == second["collapse_key"] == f"{row.notification_id}-webhook"


async def test_an_unreachable_gateway_is_throttled(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    unreachable = dataclasses.replace(
        push_runtime,
        settings=push_runtime.settings.model_copy(
            update={"push_gateway_url": f"http://127.0.0.1:{closed}/api/push"}
        ),
    )
    fc, headers = await open_citizen(client, settings)
    await register(client, headers, "apns", device_token())
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    # Process and push by hand: a drain would wait for the retry (a minute away).
    assert await process_message(unreachable, message_id, fc) == "PROCESSED"
    notification_id = (await channel_row(push_runtime, message_id)).notification_id
    await send_push_job(unreachable, {"notification_id": notification_id})
    row = await channel_row(push_runtime, message_id)
    assert row.status == "THROTTLED"
    assert row.last_error == "TemporaryFailure: push gateway unreachable: ConnectError"
    retries = await forget_push_jobs(push_runtime, notification_id)
    assert retries == 2  # the first job (run by hand above) and the retry


async def test_an_expired_message_is_never_pushed(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    gateway: Receiver,
) -> None:
    fc, headers = await open_citizen(client, settings)
    await register(client, headers, "apns", device_token())
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    async with transaction(push_runtime.sessions) as session:
        await session.execute(
            update(Message)
            .where(Message.fiscal_code == fc, Message.id == message_id)
            .values(created_at=text("now() - interval '2 hours'"))
        )
    await drain(push_runtime)
    assert await webhook_status(client, sender, fc, message_id) == "EXPIRED"
    assert gateway.received == []


async def test_a_gone_subscription_is_deleted(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    push_service: Receiver,
) -> None:
    push_service.statuses.append(410)
    fc, headers = await open_citizen(client, settings)
    installation_id = await register(
        client, headers, "webpush", browser_for(push_service).subscription
    )
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    await drain(push_runtime)
    assert await webhook_status(client, sender, fc, message_id) == "FAILED"
    async with push_runtime.sessions() as session:
        assert await session.get(Installation, installation_id) is None


async def test_one_accepting_device_is_enough(
    client: httpx.AsyncClient,
    settings: Settings,
    factory: Factory,
    push_runtime: Runtime,
    gateway: Receiver,
    push_service: Receiver,
) -> None:
    gateway.statuses.append(503)
    fc, headers = await open_citizen(client, settings)
    await register(client, headers, "apns", device_token())
    browser = browser_for(push_service)
    await register(client, headers, "webpush", browser.subscription)
    sender = await factory.sender()
    message_id = await send_message(client, sender, fc)
    await drain(push_runtime)
    assert len(gateway.received) == 1
    assert browser.decrypt(push_service.received[0].body)["message_id"] == message_id
    assert await webhook_status(client, sender, fc, message_id) == "SENT"
