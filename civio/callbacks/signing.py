"""The callback signature (``docs/callbacks.md``), Stripe-style.

``X-Civio-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{raw_body}")>``: the timestamp
is signed with the body so a receiver can refuse old (replayed) requests, and the scheme is
versioned so a future one can be sent alongside without breaking receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "v1"


def new_secret() -> str:
    """32 random bytes, hex. The HMAC key is this string exactly as shown to the sender, so
    receivers need no decoding step."""
    return secrets.token_hex(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def headers_for(secret: str, event_id: int, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "civio-callbacks/1",
        "X-Civio-Event-Id": str(event_id),
        "X-Civio-Timestamp": str(timestamp),
        "X-Civio-Signature": signature(secret, timestamp, body),
    }
