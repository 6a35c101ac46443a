"""IO's email-validation-process: a single-use link, mailed by the worker, that proves the
citizen reads the address stored in their profile.

The token is ``<token_id>:<validator>``: a ULID and 12 random bytes in hex, IO's format. The
database keeps only the validator's SHA-256 and the address's keyed hash, so neither a dump
nor a reader of ``email_validation_tokens`` can follow a link or learn an address.

The mail leaves from the worker, not the request (a slow or down relay must not fail
``POST /email-validation-process`` or a profile update), so the job needs the validator.
Jobs are rows in PostgreSQL too, so the validator travels **sealed with the citizen's data
key** (AES-GCM, bound to the token id as associated data), together with the name for the
greeting; the job payload holds no address and no token in clear. The alternative, minting
the validator inside the job, would send a different link on every redelivery of an
at-least-once job; sealing makes a redelivered job resend the same, still valid, link.
Destroying the citizen's data key also makes a pending job undeliverable.

Each start supersedes the citizen's earlier tokens (IO instead ignores a second start while
its orchestration runs): only the newest mail's link works, and a job whose token was
superseded or used meanwhile sends nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.config import Settings
from civio.core.crypto import CryptoError, KeyRing
from civio.core.db import transaction
from civio.core.ids import new_ulid
from civio.core.keys import decrypt_for, encrypt_for
from civio.core.languages import citizen_language
from civio.core.mail import MailDeliveryError, compose_mail, send_mail
from civio.core.problems import Problem
from civio.core.queue import enqueue, task
from civio.core.runtime import Runtime
from civio.profiles.models import EmailValidationToken, Profile
from civio.profiles.service import email_lookup_hash, email_taken_by_another, read_email

log = structlog.get_logger(__name__)

SEND_TASK = "profiles.send_validation_email"
TOKEN_PATTERN = r"^[A-Za-z0-9]{26}:[A-Fa-f0-9]{24}$"  # noqa: S105 - a format, not a secret
TOKEN_RE = re.compile(TOKEN_PATTERN)
VALIDATOR_BYTES = 12
VALIDATION_PATH = "/validate-profile-email"
# Mail languages by IO's preferred_languages codes; the first one supported wins.
# IO's activity retry policy for the mail: 10 attempts, 5 s first interval, backoff factor 1.5.
MAX_SEND_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 5.0
RETRY_BACKOFF = 1.5


class ValidationError(StrEnum):
    """The ``error=`` values of IO's callback page, and the v2 ``reason`` values."""

    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105 - an outcome's name, not a secret
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 - an outcome's name, not a secret
    EMAIL_ALREADY_TAKEN = "EMAIL_ALREADY_TAKEN"
    GENERIC_ERROR = "GENERIC_ERROR"


class ValidationFailed(Exception):
    """A link that cannot validate. ``email`` is known only when the token still matches
    the profile's address (IO's v2 answers echo it)."""

    def __init__(self, reason: ValidationError, email: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.email = email


@dataclass(frozen=True)
class CheckedToken:
    token_id: str
    fiscal_code: str
    email: str


class _Undeliverable(Exception):
    """A job that no retry can deliver (undecryptable payload, refused recipient, …)."""


def hash_validator(validator: str) -> bytes:
    # Hex is case-insensitive; a mail client that upper-cases the link still validates.
    return hashlib.sha256(validator.lower().encode()).digest()


def _seal_aad(token_id: str) -> str:
    return f"email-validation-token:{token_id}"


# --- start ---------------------------------------------------------------------------------


async def start_email_validation(
    session: AsyncSession, runtime: Runtime, profile: Profile, *, name: str | None = None
) -> None:
    """Issue a new token for the profile's address and enqueue its mail, in the caller's
    transaction (flush only): if the caller rolls back, no token and no mail exist.

    ``name`` is the identity provider's given name, for the greeting; profiles do not store it.
    """
    if profile.is_email_validated:
        raise Problem(400, "Validation error", "The email is already validated")
    email = await read_email(session, runtime.keyring, profile)
    if not email:
        raise Problem(409, "Email not set", "The profile has no email address to validate.")
    fiscal_code = profile.fiscal_code
    await session.execute(
        delete(EmailValidationToken).where(EmailValidationToken.fiscal_code == fiscal_code)
    )
    token_id = new_ulid()
    validator = secrets.token_hex(VALIDATOR_BYTES)
    session.add(
        EmailValidationToken(
            token_id=token_id,
            validator_hash=hash_validator(validator),
            fiscal_code=fiscal_code,
            email_hash=email_lookup_hash(runtime.keyring, email),
            invalid_after=datetime.now(UTC)
            + timedelta(seconds=runtime.settings.email_validation_ttl_seconds),
        )
    )
    await session.flush()
    sealed = await encrypt_for(
        session,
        runtime.keyring,
        fiscal_code,
        orjson.dumps({"validator": validator, "name": name}),
        _seal_aad(token_id),
    )
    await enqueue(
        session,
        SEND_TASK,
        {
            "token_id": token_id,
            "fiscal_code": fiscal_code,
            "sealed": base64.b64encode(sealed).decode(),
            "attempt": 1,
        },
    )
    log.info(
        "profiles.email_validation.started",
        token_id=token_id,
        citizen=runtime.keyring.log_ref(fiscal_code),
    )


# --- the mail ------------------------------------------------------------------------------


def validation_link(settings: Settings, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}{VALIDATION_PATH}?token={quote(token, safe=':')}"


def build_validation_email(
    settings: Settings,
    *,
    email: str,
    token: str,
    name: str | None,
    preferred_languages: Sequence[str],
) -> EmailMessage:
    """The validation mail: plain text and HTML alternatives in the citizen's language.

    The subject is set in the language's ``.txt`` template, so each language's wording
    lives in its own template files.
    """
    return compose_mail(
        settings,
        package="civio.profiles",
        template="email_validation",
        lang=citizen_language(preferred_languages),
        to=email,
        context={"name": name, "link": validation_link(settings, token)},
    )


@task(SEND_TASK)
async def send_validation_email_job(runtime: Runtime, payload: dict[str, Any]) -> None:
    """Deliver, retry with IO's backoff, or give up; nothing here raises into the queue,
    whose log table would keep the traceback (SMTP errors can quote addresses)."""
    token_id = str(payload.get("token_id", ""))
    fiscal_code = str(payload.get("fiscal_code", ""))
    attempt = int(payload.get("attempt", 1))
    try:
        outcome = await deliver_validation_email(
            runtime, token_id, fiscal_code, str(payload.get("sealed", ""))
        )
    except _Undeliverable as exc:
        log.error(
            "profiles.email_validation.undeliverable",
            token_id=token_id,
            citizen=runtime.keyring.log_ref(fiscal_code),
            error=str(exc),
        )
        return
    except Exception as exc:  # transient by elimination: the relay or the database
        await _retry_or_give_up(runtime, payload, attempt, exc)
        return
    log.info(
        "profiles.email_validation.mail",
        token_id=token_id,
        citizen=runtime.keyring.log_ref(fiscal_code),
        outcome=outcome,
    )


async def deliver_validation_email(
    runtime: Runtime, token_id: str, fiscal_code: str, sealed: str
) -> str:
    """Send the mail for a token still worth sending; returns ``sent`` or why it was not."""
    keyring = runtime.keyring
    async with transaction(runtime.sessions) as session:
        row = await session.get(EmailValidationToken, token_id)
        if row is None or row.fiscal_code != fiscal_code:
            return "superseded"
        if row.invalid_after < datetime.now(UTC):
            return "expired"
        profile = await session.get(Profile, fiscal_code)
        if profile is None:
            return "no_profile"
        if profile.is_email_validated:
            return "already_validated"
        if profile.email_hash is None or not hmac.compare_digest(
            profile.email_hash, row.email_hash
        ):
            return "email_changed"
        try:
            secret = orjson.loads(
                await decrypt_for(
                    session, keyring, fiscal_code, base64.b64decode(sealed), _seal_aad(token_id)
                )
            )
            validator = str(secret["validator"])
            name = secret.get("name")
        except (CryptoError, ValueError, KeyError, TypeError):
            raise _Undeliverable("the sealed token does not open") from None
        if not hmac.compare_digest(hash_validator(validator), row.validator_hash):
            raise _Undeliverable("the sealed token does not match its row")
        email = await read_email(session, keyring, profile)
        languages = list(profile.preferred_languages)
    if not email:
        return "email_changed"
    try:
        message = build_validation_email(
            runtime.settings,
            email=email,
            token=f"{token_id}:{validator}",
            name=str(name) if name else None,
            preferred_languages=languages,
        )
    except ValueError:
        # The stored address cannot be a header (e.g. a line break in it).
        raise _Undeliverable("the address cannot be written in a header") from None
    try:
        await send_mail(runtime.settings, message)
    except MailDeliveryError as exc:
        if exc.permanent:
            raise _Undeliverable(str(exc)) from None
        raise
    return "sent"


def retry_delay_seconds(attempt: int) -> float:
    return FIRST_RETRY_SECONDS * RETRY_BACKOFF ** (attempt - 1)


async def _retry_or_give_up(
    runtime: Runtime, payload: dict[str, Any], attempt: int, exc: Exception
) -> None:
    token_id = str(payload.get("token_id", ""))
    # Only the type and our own messages: a driver's text could quote data.
    error = str(exc) if isinstance(exc, MailDeliveryError) else type(exc).__name__
    if attempt >= MAX_SEND_ATTEMPTS:
        log.error(
            "profiles.email_validation.failed", token_id=token_id, attempts=attempt, error=error
        )
        return
    delay = retry_delay_seconds(attempt)
    async with transaction(runtime.sessions) as session:
        await enqueue(
            session,
            SEND_TASK,
            {**payload, "attempt": attempt + 1},
            delay=timedelta(seconds=delay),
        )
    log.warning(
        "profiles.email_validation.retry",
        token_id=token_id,
        attempts=attempt,
        delay_seconds=delay,
        error=error,
    )


# --- following the link ----------------------------------------------------------------------


def _email_lock_key(email_hash: bytes) -> int:
    return int.from_bytes(email_hash[:8], "big", signed=True)


async def check_token(
    session: AsyncSession, keyring: KeyRing, token: str, *, for_update: bool = False
) -> CheckedToken:
    """IO's checks, in IO's order: the token exists and its validator matches, it has not
    expired, the profile exists and still has the token's address, and no other citizen has
    validated that address. ``for_update`` locks what validation then changes."""
    if not TOKEN_RE.match(token):
        raise ValidationFailed(ValidationError.INVALID_TOKEN)
    token_id, validator = token.split(":")
    query = select(EmailValidationToken).where(EmailValidationToken.token_id == token_id.upper())
    row = await session.scalar(query)
    if row is None or not hmac.compare_digest(row.validator_hash, hash_validator(validator)):
        raise ValidationFailed(ValidationError.INVALID_TOKEN)
    profile_query = select(Profile).where(Profile.fiscal_code == row.fiscal_code)
    if for_update:
        # Profile first, then its tokens: the order a profile update takes them in (it
        # supersedes the tokens under the profile's lock), so the two cannot deadlock.
        profile = await session.scalar(
            profile_query.with_for_update().execution_options(populate_existing=True)
        )
        row = await session.scalar(
            query.with_for_update().execution_options(populate_existing=True)
        )
        if row is None:  # spent or superseded while we waited for the lock
            raise ValidationFailed(ValidationError.INVALID_TOKEN)
        # Two citizens validating one address at once: the second sees the first's result.
        await session.execute(select(func.pg_advisory_xact_lock(_email_lock_key(row.email_hash))))
    else:
        profile = await session.scalar(profile_query)
    same_address = (
        profile is not None
        and profile.email_hash is not None
        and hmac.compare_digest(profile.email_hash, row.email_hash)
    )
    email = await read_email(session, keyring, profile) if profile and same_address else None
    if row.invalid_after < datetime.now(UTC):
        raise ValidationFailed(ValidationError.TOKEN_EXPIRED, email)
    if profile is None:
        raise ValidationFailed(ValidationError.GENERIC_ERROR)
    if email is None:
        raise ValidationFailed(ValidationError.INVALID_TOKEN)
    if await email_taken_by_another(session, row.email_hash, row.fiscal_code):
        raise ValidationFailed(ValidationError.EMAIL_ALREADY_TAKEN, email)
    return CheckedToken(token_id=row.token_id, fiscal_code=row.fiscal_code, email=email)


async def validate_email(session: AsyncSession, keyring: KeyRing, token: str) -> CheckedToken:
    """Mark the address validated (a new profile version) and spend the token: the link
    works once, and the citizen's other pending links die with it."""
    checked = await check_token(session, keyring, token, for_update=True)
    profile = await session.get(Profile, checked.fiscal_code)
    assert profile is not None  # locked by check_token
    profile.is_email_validated = True
    profile.version += 1
    await session.execute(
        delete(EmailValidationToken).where(EmailValidationToken.fiscal_code == checked.fiscal_code)
    )
    await session.flush()
    log.info(
        "profiles.email_validation.validated",
        token_id=checked.token_id,
        citizen=keyring.log_ref(checked.fiscal_code),
    )
    return checked
