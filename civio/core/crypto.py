"""Encryption at rest: AES-256-GCM envelopes under per-citizen data keys.

Each fiscal code owns one random 256-bit data key, stored only wrapped (encrypted) by the
master key. Destroying a citizen's data key makes every ciphertext of theirs unreadable
(crypto-shredding). Lookups never need plaintext: values that must be searchable are
stored as keyed hashes (HMAC-SHA256 under a key derived from the master key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections import OrderedDict
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from civio.core.config import Settings

log = structlog.get_logger(__name__)

NONCE_BYTES = 12
ENVELOPE_VERSION = b"\x01"


class CryptoError(Exception):
    """A ciphertext could not be opened (wrong key, tampering, or shredded key)."""


def load_master_key(settings: Settings) -> bytes:
    """The master key from ``CIVIO_MASTER_KEY``, or (dev only) a generated key file."""
    if settings.master_key:
        try:
            key = base64.b64decode(settings.master_key, validate=True)
        except ValueError as exc:
            raise ValueError("CIVIO_MASTER_KEY must be base64") from exc
        if len(key) != 32:
            raise ValueError("CIVIO_MASTER_KEY must be base64 of exactly 32 bytes")
        return key
    if not settings.is_dev:
        raise ValueError("CIVIO_MASTER_KEY is required when CIVIO_ENV=production")
    path = Path(settings.data_dir) / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)).decode())
        log.warning(
            "crypto.master_key.generated",
            path=str(path),
            hint="dev only: set CIVIO_MASTER_KEY in production and keep it out of the database",
        )
    key = base64.b64decode(path.read_text().strip())
    if len(key) != 32:
        raise ValueError(f"{path} does not hold base64 of 32 bytes")
    return key


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return ENVELOPE_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, envelope: bytes, aad: bytes) -> bytes:
    if envelope[:1] != ENVELOPE_VERSION:
        raise CryptoError("unknown envelope version")
    nonce = envelope[1 : 1 + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, envelope[1 + NONCE_BYTES :], aad)
    except Exception as exc:
        raise CryptoError("ciphertext does not open under this key") from exc


class KeyRing:
    """Wraps and unwraps data keys, and keeps recently used ones in memory."""

    def __init__(self, master_key: bytes, cache_size: int = 10_000) -> None:
        self._wrapping_key = _derive(master_key, b"civio/data-key-wrapping/v1")
        self._hash_key = _derive(master_key, b"civio/keyed-hash/v1")
        self._service_secret_key = _derive(master_key, b"civio/service-secret/v1")
        self._feed_key = _derive(master_key, b"civio/subscriptions-feed/v1")
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size

    def new_data_key(self, owner: str) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form, bound to its owner."""
        data_key = AESGCM.generate_key(bit_length=256)
        return data_key, seal(self._wrapping_key, data_key, b"dk:" + owner.encode())

    def unwrap(self, owner: str, wrapped: bytes) -> bytes:
        cached = self._cache.get(owner)
        if cached is not None:
            self._cache.move_to_end(owner)
            return cached
        data_key = open_sealed(self._wrapping_key, wrapped, b"dk:" + owner.encode())
        self.remember(owner, data_key)
        return data_key

    def remember(self, owner: str, data_key: bytes) -> None:
        self._cache[owner] = data_key
        self._cache.move_to_end(owner)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def cached(self, owner: str) -> bytes | None:
        return self._cache.get(owner)

    def forget(self, owner: str) -> None:
        self._cache.pop(owner, None)

    def keyed_hash(self, purpose: str, value: str) -> bytes:
        """Deterministic, non-reversible lookup token (e.g. for email uniqueness)."""
        return hmac.new(self._hash_key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()

    def log_ref(self, fiscal_code: str) -> str:
        """What logs carry instead of a fiscal code: a short reference that correlates one
        citizen's entries and means nothing without the master key.

        A plain hash would not do: fiscal codes are few and structured (birth date, place,
        name letters), so anyone reading the logs could hash a guess and check it. Only
        the holder of the master key can compute the reference of a given fiscal code.
        """
        return self.keyed_hash("log-ref", fiscal_code).hex()[:16]

    def seal_service_secret(self, service_id: str, secret: bytes) -> bytes:
        """Encrypt a sender's shared secret (e.g. the callback signing key).

        Unlike subscription keys it cannot be stored hashed: civio must use it to sign. The
        AAD binds it to its service, so a ciphertext copied to another row does not open.
        """
        return seal(self._service_secret_key, secret, b"svc-secret:" + service_id.encode())

    def open_service_secret(self, service_id: str, sealed: bytes) -> bytes:
        return open_sealed(self._service_secret_key, sealed, b"svc-secret:" + service_id.encode())

    def seal_feed_hash(self, context: str, published_hash: bytes) -> bytes:
        """Encrypt a hash the subscriptions feed will publish (see
        ``civio.profiles.models.SubscriptionEvent`` for why it is sealed, not keyed)."""
        return seal(self._feed_key, published_hash, b"feed:" + context.encode())

    def open_feed_hash(self, context: str, sealed: bytes) -> bytes:
        return open_sealed(self._feed_key, sealed, b"feed:" + context.encode())
