"""Sessions: 48 random bytes as hex, stored as SHA-256, 30 days by default.

The first login of a fiscal code creates its profile (inbox and webhook off, email from the
identity provider, not validated), as IO's session manager does.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.auth.models import CitizenSession
from civio.auth.schemas import Identity
from civio.core.crypto import KeyRing
from civio.core.keys import decrypt_for, encrypt_for
from civio.notifications.push.installations import unbind_sessions
from civio.profiles.service import ensure_profile_at_login

TOKEN_BYTES = 48


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def identity_aad(token_hash: bytes) -> str:
    return f"session-identity:{token_hash.hex()}"


@dataclass(frozen=True)
class AuthenticatedCitizen:
    fiscal_code: str
    identity: Identity
    token_hash: bytes
    spid_level: str
    identity_provider: str
    created_at: datetime
    expires_at: datetime


async def open_session(
    session: AsyncSession,
    keyring: KeyRing,
    identity: Identity,
    *,
    spid_level: str,
    identity_provider: str,
    ttl_seconds: int,
) -> str:
    """Create the profile if needed and a new session; return the bearer token (shown once)."""
    await ensure_profile_at_login(session, keyring, identity.fiscal_code, identity.spid_email)
    token = secrets.token_hex(TOKEN_BYTES)
    token_hash = hash_token(token)
    ciphertext = await encrypt_for(
        session,
        keyring,
        identity.fiscal_code,
        identity.model_dump_json().encode(),
        identity_aad(token_hash),
    )
    now = datetime.now(UTC)
    session.add(
        CitizenSession(
            token_hash=token_hash,
            fiscal_code=identity.fiscal_code,
            spid_level=spid_level,
            identity_provider=identity_provider,
            identity_ciphertext=ciphertext,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return token


async def resolve_token(
    session: AsyncSession, keyring: KeyRing, token: str
) -> AuthenticatedCitizen | None:
    token_hash = hash_token(token)
    row = await session.scalar(
        select(CitizenSession).where(
            CitizenSession.token_hash == token_hash,
            CitizenSession.expires_at > datetime.now(UTC),
        )
    )
    if row is None:
        return None
    plaintext = await decrypt_for(
        session, keyring, row.fiscal_code, row.identity_ciphertext, identity_aad(token_hash)
    )
    return AuthenticatedCitizen(
        fiscal_code=row.fiscal_code,
        identity=Identity.model_validate_json(plaintext),
        token_hash=token_hash,
        spid_level=row.spid_level,
        identity_provider=row.identity_provider,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


async def close_session(session: AsyncSession, token_hash: bytes) -> None:
    await session.execute(delete(CitizenSession).where(CitizenSession.token_hash == token_hash))


async def purge_expired_batch(session: AsyncSession, limit: int) -> int:
    """Delete up to ``limit`` expired sessions and the devices they registered; returns how
    many sessions went.

    An expired token already opens nothing (``resolve_token`` checks the expiry), but its
    row keeps the identity ciphertext and its installations keep receiving pushes for a
    citizen who is no longer logged in there. Rows locked by another worker's purge are
    skipped, so concurrent workers share the backlog instead of queueing on each other.
    """
    token_hashes = list(
        (
            await session.scalars(
                select(CitizenSession.token_hash)
                .where(CitizenSession.expires_at <= datetime.now(UTC))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if not token_hashes:
        return 0
    await unbind_sessions(session, token_hashes)
    await session.execute(delete(CitizenSession).where(CitizenSession.token_hash.in_(token_hashes)))
    return len(token_hashes)
