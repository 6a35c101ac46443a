"""Installations: the devices and browsers that receive a citizen's pushes.

An installation id names a device, not a citizen: registering an id another citizen holds
rebinds the device (the phone changed hands, or someone else logged in on it), so the first
citizen stops receiving pushes there. Each installation remembers the session that
registered it, and a logout deletes it, as IO's backend does. The push channel (device
token or Web Push subscription) identifies the device, so it is stored sealed under the
citizen's data key, bound to the installation id.

A Web Push endpoint is a URL the citizen's browser chose, which the worker will POST to:
outside dev it must be https and resolve to public addresses only (``civio.core.ssrf``),
checked here at registration and again at every connection.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, ValidationInfo, field_validator
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.crypto import KeyRing
from civio.core.keys import decrypt_for, encrypt_for
from civio.core.problems import Problem
from civio.core.ssrf import DestinationRefused, OutboundGuard
from civio.core.types import IOModel
from civio.notifications.models import Installation

Platform = Literal["apns", "fcmv1", "webpush"]
INSTALLATION_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_PUSH_CHANNEL = 4096


@dataclass(frozen=True)
class WebPushSubscription:
    """A browser's PushSubscription: where to POST, and the keys to encrypt for."""

    endpoint: str
    p256dh: str
    auth: str

    def to_json(self) -> str:
        keys = {"p256dh": self.p256dh, "auth": self.auth}
        return orjson.dumps({"endpoint": self.endpoint, "keys": keys}).decode()

    @property
    def is_https(self) -> bool:
        return urlsplit(self.endpoint).scheme == "https"


def _b64url(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("keys must be base64url") from exc


def parse_subscription(text: str) -> WebPushSubscription:
    """Check a PushSubscription JSON string as the browser's ``toJSON()`` gives it.

    The keys are checked now (a P-256 point and a 16-byte auth secret, RFC 8291), so a bad
    subscription is a 400 at registration rather than a failure at every message.
    """
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError("a Web Push subscription is a JSON object") from exc
    if not isinstance(data, dict):
        raise ValueError("a Web Push subscription is a JSON object")
    endpoint, keys = data.get("endpoint"), data.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, dict):
        raise ValueError("a Web Push subscription has an endpoint and keys")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("the endpoint must be an absolute http(s) URL")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        raise ValueError("keys.p256dh and keys.auth are required strings")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url(p256dh))
    except ValueError as exc:
        raise ValueError("keys.p256dh is not an uncompressed P-256 public key") from exc
    if len(_b64url(auth)) != 16:
        raise ValueError("keys.auth must be 16 bytes")
    return WebPushSubscription(endpoint=endpoint, p256dh=p256dh, auth=auth)


class InstallationBody(IOModel):
    """IO's Installation (the BFF accepts it and answers at once)."""

    platform: Platform
    push_channel: Annotated[
        str, Field(alias="pushChannel", min_length=1, max_length=MAX_PUSH_CHANNEL)
    ]

    @field_validator("push_channel")
    @classmethod
    def _channel(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("platform") == "webpush":
            return parse_subscription(value).to_json()  # stored normalized
        if any(c.isspace() for c in value):
            raise ValueError("a device token has no whitespace")
        return value


async def check_endpoint(body: InstallationBody, guard: OutboundGuard) -> None:
    """Outside dev, a Web Push endpoint is an https URL at a public address (400 if not)."""
    if body.platform != "webpush" or not guard.enforce:
        return
    subscription = parse_subscription(body.push_channel)
    if not subscription.is_https:
        raise Problem(400, "Invalid Installation", "A Web Push endpoint must be an https URL.")
    try:
        await guard.check_url(subscription.endpoint)
    except DestinationRefused as exc:
        detail = f"The Web Push endpoint's host {exc.reason}"
        if exc.is_address:
            detail += ": civio sends pushes only to public addresses"
        raise Problem(400, "Invalid Installation", detail + ".") from exc


def installation_aad(installation_id: str) -> str:
    return f"installation:{installation_id}"


async def register_installation(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    fiscal_code: str,
    session_token_hash: bytes,
    installation_id: str,
    body: InstallationBody,
) -> None:
    """Create the installation, or take it over for this citizen and session."""
    ciphertext = await encrypt_for(
        session,
        keyring,
        fiscal_code,
        body.push_channel.encode(),
        installation_aad(installation_id),
    )
    values = {
        "fiscal_code": fiscal_code,
        "session_token_hash": session_token_hash,
        "platform": body.platform,
        "push_channel_ciphertext": ciphertext,
    }
    await session.execute(
        insert(Installation)
        .values(installation_id=installation_id, **values)
        .on_conflict_do_update(
            index_elements=[Installation.installation_id],
            set_={**values, "updated_at": func.now()},
        )
    )


async def unbind_session(session: AsyncSession, token_hash: bytes) -> int:
    """Logout: the devices registered by this session stop receiving pushes."""
    result = await session.execute(
        delete(Installation).where(Installation.session_token_hash == token_hash)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def unbind_sessions(session: AsyncSession, token_hashes: list[bytes]) -> int:
    """Expired sessions being purged: their devices go with them, as at logout."""
    if not token_hashes:
        return 0
    result = await session.execute(
        delete(Installation).where(Installation.session_token_hash.in_(token_hashes))
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Target:
    """One installation to push to, with its channel in clear (never logged)."""

    installation_id: str
    platform: str
    channel: str
    # What was read, so removing a dead subscription never removes a newer registration.
    ciphertext: bytes


async def load_targets(session: AsyncSession, keyring: KeyRing, fiscal_code: str) -> list[Target]:
    rows = await session.scalars(
        select(Installation)
        .where(Installation.fiscal_code == fiscal_code)
        .order_by(Installation.installation_id)
    )
    targets = []
    for row in rows:
        channel = await decrypt_for(
            session,
            keyring,
            fiscal_code,
            row.push_channel_ciphertext,
            installation_aad(row.installation_id),
        )
        targets.append(
            Target(row.installation_id, row.platform, channel.decode(), row.push_channel_ciphertext)
        )
    return targets


async def forget_targets(session: AsyncSession, targets: list[Target]) -> int:
    """Delete installations whose subscription the push service says is gone."""
    if not targets:
        return 0
    result = await session.execute(
        delete(Installation).where(
            or_(
                *(
                    and_(
                        Installation.installation_id == t.installation_id,
                        Installation.push_channel_ciphertext == t.ciphertext,
                    )
                    for t in targets
                )
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
