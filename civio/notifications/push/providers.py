"""Push providers behind one interface: each takes the installations of its platforms and
answers one result per installation.

* ``GatewayProvider``: apns/fcmv1 device tokens through a gorush-compatible HTTP gateway
  (``POST {"notifications": [...]}``), which holds the APNs and FCM credentials. civio
  never talks to Apple or Google itself, so those credentials stay with the gateway.
* ``WebPushProvider``: browsers, straight to the subscription's push service (RFC 8030),
  the payload encrypted for the browser (RFC 8291, aes128gcm, by pywebpush) and the
  request signed with civio's VAPID key (RFC 8292). The endpoint is the browser's choice,
  so it goes through the guarded client (``civio.core.outbound``): outside dev, an
  endpoint whose name now resolves to an internal address is refused, a permanent failure.

Status codes: 2xx sent; 429, 5xx and network errors are worth retrying; 404/410 from a
Web Push service mean the subscription is gone; any other 4xx is permanent. The delivery's
deduplication key travels as the gateway's collapse ids and as the Web Push ``Topic``, so a
push repeated after a crash replaces the first one instead of alerting twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPusher  # type: ignore[import-untyped]

from civio.core.config import Settings
from civio.core.outbound import guarded_client, outbound_client
from civio.core.ssrf import DestinationRefused, OutboundGuard
from civio.notifications.push.installations import Target, parse_subscription

log = structlog.get_logger(__name__)

# FCM refuses a time_to_live above four weeks.
FCM_MAX_TTL = 2_419_200
GATEWAY_PLATFORMS = {"apns": 1, "fcmv1": 2}  # gorush: 1 = iOS, 2 = Android (Firebase)
VAPID_CLAIM_SECONDS = 12 * 3600


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    # Stored as the channel's last_error: a status or an error class, never a channel.
    detail: str = ""


@dataclass(frozen=True)
class PushNotice:
    """What every device is told."""

    title: str
    body: str
    message_id: str
    dedup_key: str
    expires_at: datetime

    def ttl_seconds(self) -> int:
        return max(0, int((self.expires_at - datetime.now(UTC)).total_seconds()))


class PushProvider(Protocol):
    platforms: ClassVar[frozenset[str]]

    async def send(self, targets: Sequence[Target], notice: PushNotice) -> list[Result]:
        """One result per target, in order."""
        ...


def by_status(status: int, who: str) -> Result:
    if 200 <= status < 300:
        return Result(Outcome.SENT)
    detail = f"{who} answered {status}"
    if status == 429 or status >= 500:
        return Result(Outcome.RETRY, detail)
    return Result(Outcome.FAILED, detail)


def unreachable(exc: Exception, who: str) -> Result:
    return Result(Outcome.RETRY, f"{who} unreachable: {type(exc).__name__}")


# --- gorush-compatible gateway -------------------------------------------------------------


def gateway_request(targets: Sequence[Target], notice: PushNotice) -> dict[str, Any]:
    """gorush's ``POST /api/push`` body: one notification per platform, all its tokens.

    ``message_id`` is the only custom datum (IO's templates carry the same): on iOS it
    lands beside ``aps``, on Android in the data map (string values only).
    """
    notifications = []
    ttl = notice.ttl_seconds()
    for platform, code in GATEWAY_PLATFORMS.items():
        tokens = [t.channel for t in targets if t.platform == platform]
        if not tokens:
            continue
        entry: dict[str, Any] = {
            "notif_id": notice.dedup_key,
            "tokens": tokens,
            "platform": code,
            "title": notice.title,
            "message": notice.body,
            "priority": "high",
            "data": {"message_id": notice.message_id},
        }
        if platform == "apns":
            entry["push_type"] = "alert"
            entry["collapse_id"] = notice.dedup_key  # apns-collapse-id
            entry["expiration"] = int(notice.expires_at.timestamp())
        else:
            entry["collapse_key"] = notice.dedup_key
            entry["time_to_live"] = min(ttl, FCM_MAX_TTL)
            # A repeated push replaces the shown notification instead of adding one.
            entry["notification"] = {"tag": notice.dedup_key}
        notifications.append(entry)
    return {"notifications": notifications}


class GatewayProvider:
    platforms: ClassVar[frozenset[str]] = frozenset(GATEWAY_PLATFORMS)

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(self, targets: Sequence[Target], notice: PushNotice) -> list[Result]:
        if not self.url:
            result = Result(Outcome.FAILED, "no push gateway configured (CIVIO_PUSH_GATEWAY_URL)")
            return [result] * len(targets)
        try:
            # The operator configured the gateway: the unguarded client.
            response = await outbound_client().post(self.url, json=gateway_request(targets, notice))
            result = by_status(response.status_code, "push gateway")
        except httpx.HTTPError as exc:
            result = unreachable(exc, "push gateway")
        return [result] * len(targets)


# --- Web Push --------------------------------------------------------------------------------


def topic_for(dedup_key: str) -> str:
    """RFC 8030 ``Topic``: at most 32 characters of the base64url alphabet."""
    return base64.urlsafe_b64encode(hashlib.sha256(dedup_key.encode()).digest()[:24]).decode()


def webpush_payload(notice: PushNotice) -> bytes:
    """What the service worker receives (decrypted): the texts and the message to open."""
    return orjson.dumps(
        {"title": notice.title, "body": notice.body, "message_id": notice.message_id}
    )


class WebPushProvider:
    platforms: ClassVar[frozenset[str]] = frozenset({"webpush"})

    def __init__(self, vapid: Vapid | None, subject: str, guard: OutboundGuard) -> None:
        self.vapid = vapid
        self.subject = subject
        self.guard = guard

    async def send(self, targets: Sequence[Target], notice: PushNotice) -> list[Result]:
        client = guarded_client(self.guard)
        return list(await asyncio.gather(*(self._one(client, t, notice) for t in targets)))

    async def _one(self, client: httpx.AsyncClient, target: Target, notice: PushNotice) -> Result:
        if self.vapid is None:
            return Result(Outcome.FAILED, "Web Push is not configured (CIVIO_VAPID_PRIVATE_KEY)")
        try:
            subscription = parse_subscription(target.channel)
            pusher = WebPusher(
                {
                    "endpoint": subscription.endpoint,
                    "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
                }
            )
            encrypted: bytes = pusher.encode(webpush_payload(notice), "aes128gcm")["body"]
        except ValueError:  # checked at registration; only a corrupted row gets here
            return Result(Outcome.FAILED, "invalid web push subscription")
        parts = urlsplit(subscription.endpoint)
        claims = {
            "sub": self.subject,
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(time.time()) + VAPID_CLAIM_SECONDS,
        }
        headers: dict[str, str] = dict(self.vapid.sign(claims))
        headers.update(
            {
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
                "TTL": str(notice.ttl_seconds()),
                "Topic": topic_for(notice.dedup_key),
                "Urgency": "normal",
            }
        )
        try:
            response = await client.post(subscription.endpoint, content=encrypted, headers=headers)
        except DestinationRefused as exc:
            # The same endpoint would be refused again; the endpoint itself is not told.
            return Result(Outcome.FAILED, f"web push endpoint refused: {exc.category} address")
        except httpx.HTTPError as exc:
            return unreachable(exc, "web push service")
        if response.status_code in (404, 410):
            return Result(Outcome.GONE, f"web push service answered {response.status_code}")
        return by_status(response.status_code, "web push service")


# --- VAPID key ---------------------------------------------------------------------------------

_vapid_cache: dict[tuple[str, str, bool], Vapid | None] = {}


def _raw_private_key(key: ec.EllipticCurvePrivateKey) -> str:
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _dev_key_file(settings: Settings) -> str:
    """The dev VAPID key in ``<data_dir>/vapid.key``, created once (like ``master.key``)."""
    path = Path(settings.data_dir) / "vapid.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(_raw_private_key(ec.generate_private_key(ec.SECP256R1())))
        log.warning(
            "push.vapid_key.generated",
            path=str(path),
            hint="dev only: set CIVIO_VAPID_PRIVATE_KEY in production; browsers subscribed "
            "with one key cannot be reached with another",
        )
    return path.read_text().strip()


def load_vapid(settings: Settings) -> Vapid | None:
    """civio's VAPID key: ``CIVIO_VAPID_PRIVATE_KEY`` (base64url raw, base64 DER or PEM),
    else in dev a generated file; None in production without one (Web Push disabled)."""
    cache_key = (settings.vapid_private_key, str(settings.data_dir), settings.is_dev)
    if cache_key in _vapid_cache:
        return _vapid_cache[cache_key]
    text = settings.vapid_private_key.strip()
    if not text and settings.is_dev:
        text = _dev_key_file(settings)
    vapid: Vapid | None = None
    if text:
        try:
            if "-----BEGIN" in text:
                vapid = Vapid.from_pem(text.encode())
            else:
                vapid = Vapid.from_string(text)
        except Exception as exc:
            raise ValueError("CIVIO_VAPID_PRIVATE_KEY is not a P-256 private key") from exc
    _vapid_cache[cache_key] = vapid
    return vapid


def vapid_public_key(vapid: Vapid) -> str:
    """The ``applicationServerKey`` a browser subscribes with (base64url, uncompressed)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def vapid_subject(settings: Settings) -> str:
    if settings.vapid_subject:
        return settings.vapid_subject
    return "mailto:" + parseaddr(settings.mail_from)[1]


def providers_for(settings: Settings) -> list[PushProvider]:
    return [
        GatewayProvider(settings.push_gateway_url),
        WebPushProvider(load_vapid(settings), vapid_subject(settings), OutboundGuard.of(settings)),
    ]


async def dispatch(
    providers: Sequence[PushProvider], targets: Sequence[Target], notice: PushNotice
) -> list[Result]:
    """Send to every target through the provider of its platform, concurrently."""
    results: list[Result] = [Result(Outcome.FAILED, "unsupported platform")] * len(targets)

    async def run(provider: PushProvider, indexes: list[int]) -> None:
        answers = await provider.send([targets[i] for i in indexes], notice)
        for i, answer in zip(indexes, answers, strict=True):
            results[i] = answer

    jobs = []
    for provider in providers:
        indexes = [i for i, t in enumerate(targets) if t.platform in provider.platforms]
        if indexes:
            jobs.append(run(provider, indexes))
    await asyncio.gather(*jobs)
    return results
