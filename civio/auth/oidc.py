"""Citizen login as an OpenID Connect relying party (SPID/CIE OIDC or any provider).

The protocol work is authlib's (authorization request and PKCE, client authentication, ID
token claims) and joserfc's (JWS signatures, the library authlib's own OIDC client uses
since authlib 1.7); outbound HTTP is plain ``httpx`` with timeouts. civio keeps only what
is its own: where a login in flight is stored (``login_attempts``, single use), how the
provider's claims become an ``Identity`` and a SPID level, and how a failure is reported.

A login in flight is bound to the browser by ``state`` alone: the row is deleted when the
callback reads it, so a replayed or forged callback finds nothing. The requested SPID level
travels as a suffix of ``state``; it cannot be altered because the row is looked up by the
exact value.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import structlog
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from authlib.oidc.discovery import OpenIDProviderMetadata  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncSession

from civio.auth.models import LoginAttempt
from civio.auth.schemas import SPID_LEVELS, Identity
from civio.core.config import Settings
from civio.core.types import FISCAL_CODE_PATTERN

log = structlog.get_logger(__name__)

CALLBACK_PATH = "/api/auth/v1/login/callback"
SCOPE = "openid profile email"
# IO's authLevel query values and the SPID levels (acr) they stand for.
AUTH_LEVELS = {level.rsplit("/", 1)[1]: level for level in SPID_LEVELS}
DEFAULT_SPID_LEVEL = "https://www.spid.gov.it/SpidL2"
# A login not completed within this time is dropped: the provider's own pages time out sooner.
ATTEMPT_TTL = timedelta(minutes=10)
# The discovery document and the JWKS are fetched again after this; an unknown ``kid`` also
# refreshes the JWKS at once, so a key rotation does not wait for it.
METADATA_MAX_AGE_SECONDS = 3600.0
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
LEEWAY_SECONDS = 60
# Only asymmetric signatures: an ID token MAC'd with the client secret, or unsigned, would
# prove nothing about the provider's keys.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# SPID/CIE OIDC name the fiscal code ``fiscal_number`` (the plain name, or the eIDAS URI).
FISCAL_NUMBER_CLAIMS = ("fiscal_number", "https://attributes.eid.gov.it/fiscal_number")
PERSON_CLAIMS = ("given_name", "family_name", "email", "birthdate")
IDENTITY_CLAIMS = (*FISCAL_NUMBER_CLAIMS, *PERSON_CLAIMS)
# What a login cannot do without; email and birth date are asked for, not required.
ESSENTIAL = {
    claim: {"essential": True} for claim in (*FISCAL_NUMBER_CLAIMS, "given_name", "family_name")
}
_FISCAL_CODE = re.compile(FISCAL_CODE_PATTERN)
_TIN_PREFIX = "TINIT-"


class LoginFailed(Exception):
    """A login that cannot complete. ``code`` is shown to the browser, ``reason`` is logged;
    neither ever carries a token, a code or personal data."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class LoginUnavailable(Exception):
    """The provider cannot be reached or described itself wrongly: not the citizen's fault."""


# --- the provider ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    jwks_uri: str
    algorithms: list[str]
    token_endpoint_auth_method: str
    claims_parameter_supported: bool
    claims_supported: frozenset[str] | None
    iss_parameter_supported: bool

    @classmethod
    def from_document(cls, document: dict[str, Any], expected_issuer: str) -> ProviderMetadata:
        """Validated as OpenID Connect Discovery requires, issuer included (§4.3): a document
        naming another issuer could make civio accept that issuer's tokens."""
        metadata = OpenIDProviderMetadata(document)
        try:
            metadata.validate()
        except (ValueError, TypeError) as exc:
            raise LoginUnavailable(f"invalid discovery document: {exc}") from exc
        issuer = str(document["issuer"])
        if issuer.rstrip("/") != expected_issuer.rstrip("/"):
            raise LoginUnavailable("the discovery document names another issuer")
        if "jwks_uri" not in document:
            raise LoginUnavailable("the discovery document has no jwks_uri")
        algorithms = [
            alg
            for alg in document.get("id_token_signing_alg_values_supported", ["RS256"])
            if alg in ASYMMETRIC_ALGORITHMS
        ]
        if not algorithms:
            raise LoginUnavailable("the provider signs ID tokens with no asymmetric algorithm")
        methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        claims = document.get("claims_supported")
        return cls(
            issuer=issuer,
            authorization_endpoint=str(document["authorization_endpoint"]),
            token_endpoint=str(document["token_endpoint"]),
            userinfo_endpoint=document.get("userinfo_endpoint"),
            jwks_uri=str(document["jwks_uri"]),
            algorithms=algorithms,
            token_endpoint_auth_method=(
                "client_secret_basic"
                if "client_secret_basic" in methods or "client_secret_post" not in methods
                else "client_secret_post"
            ),
            claims_parameter_supported=bool(document.get("claims_parameter_supported", False)),
            claims_supported=frozenset(claims) if isinstance(claims, list) else None,
            iss_parameter_supported=document.get("authorization_response_iss_parameter_supported")
            is True,
        )


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise LoginUnavailable(f"GET {url}: {type(exc).__name__}") from exc
    if not isinstance(document, dict):
        raise LoginUnavailable(f"GET {url}: not a JSON object")
    return document


class OidcClient:
    """One configured provider, with its discovery document and JWKS cached in memory."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret
        self.redirect_uri = settings.public_url.rstrip("/") + CALLBACK_PATH
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._lock = asyncio.Lock()

    @staticmethod
    def configured(settings: Settings) -> bool:
        return bool(settings.oidc_issuer and settings.oidc_client_id)

    def matches(self, settings: Settings) -> bool:
        return self.redirect_uri == settings.public_url.rstrip("/") + CALLBACK_PATH and (
            self.issuer,
            self.client_id,
            self.client_secret,
        ) == (settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret)

    @staticmethod
    def http() -> httpx.AsyncClient:
        # Redirects are not followed: a provider endpoint that moves is a configuration change.
        return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)

    async def metadata(self, http: httpx.AsyncClient) -> ProviderMetadata:
        cached = self._metadata
        if cached is not None and time.monotonic() - cached[0] < METADATA_MAX_AGE_SECONDS:
            return cached[1]
        async with self._lock:
            cached = self._metadata
            if cached is not None and time.monotonic() - cached[0] < METADATA_MAX_AGE_SECONDS:
                return cached[1]
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            metadata = ProviderMetadata.from_document(await _get_json(http, url), self.issuer)
            self._metadata = (time.monotonic(), metadata)
            return metadata

    async def key_set(self, http: httpx.AsyncClient, *, refresh: bool = False) -> KeySet:
        cached = self._keys
        if (
            not refresh
            and cached is not None
            and time.monotonic() - cached[0] < METADATA_MAX_AGE_SECONDS
        ):
            return cached[1]
        metadata = await self.metadata(http)
        document = await _get_json(http, metadata.jwks_uri)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise LoginUnavailable(f"unusable JWKS: {type(exc).__name__}") from exc
        self._keys = (time.monotonic(), keys)
        return keys

    # --- the authorization request ----------------------------------------------------------

    def authorization_url(
        self,
        metadata: ProviderMetadata,
        *,
        state: str,
        nonce: str,
        code_verifier: str,
        acr: str | None,
    ) -> str:
        extra: dict[str, str] = {
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        if acr is not None:
            extra["acr_values"] = acr
        if metadata.claims_parameter_supported:
            # SPID/CIE OIDC release the fiscal number only when asked for by name.
            wanted = [
                claim
                for claim in IDENTITY_CLAIMS
                if metadata.claims_supported is None or claim in metadata.claims_supported
            ]
            extra["claims"] = json.dumps(
                {"userinfo": {claim: ESSENTIAL.get(claim) for claim in wanted}},
                separators=(",", ":"),
            )
        url: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=self.redirect_uri,
            scope=SCOPE,
            state=state,
            **extra,
        )
        return url

    # --- the callback -------------------------------------------------------------------------

    async def exchange_code(
        self, http: httpx.AsyncClient, metadata: ProviderMetadata, code: str, code_verifier: str
    ) -> dict[str, Any]:
        """The token response; the provider refuses a code used twice or a wrong verifier."""
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=code_verifier,
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        auth = ClientAuth(self.client_id, self.client_secret, metadata.token_endpoint_auth_method)
        url, headers, body = auth.prepare("POST", metadata.token_endpoint, headers, body)
        try:
            response = await http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise LoginUnavailable(f"token endpoint: {type(exc).__name__}") from exc
        try:
            token = response.json()
        except ValueError:
            token = None
        if not isinstance(token, dict):
            if response.status_code >= 500:
                raise LoginUnavailable(f"token endpoint: HTTP {response.status_code}")
            raise LoginFailed("TOKEN_REFUSED", f"token endpoint: HTTP {response.status_code}")
        if "error" in token or response.status_code != 200:
            error = str(token.get("error", f"HTTP {response.status_code}"))[:64]
            raise LoginFailed("TOKEN_REFUSED", f"token endpoint: {error}")
        if not isinstance(token.get("id_token"), str) or not isinstance(
            token.get("access_token"), str
        ):
            raise LoginFailed("TOKEN_REFUSED", "token response without id_token or access_token")
        if str(token.get("token_type", "")).lower() != "bearer":
            raise LoginFailed("TOKEN_REFUSED", "token response with a non-Bearer token")
        return token

    async def verify_id_token(
        self,
        http: httpx.AsyncClient,
        metadata: ProviderMetadata,
        id_token: str,
        *,
        nonce: str,
        access_token: str,
    ) -> dict[str, Any]:
        def validate(keys: KeySet) -> dict[str, Any]:
            return validate_id_token(
                id_token,
                keys,
                issuer=metadata.issuer,
                client_id=self.client_id,
                nonce=nonce,
                access_token=access_token,
                algorithms=metadata.algorithms,
            )

        try:
            return validate(await self.key_set(http))
        except InvalidKeyIdError:
            pass
        # The provider may have rotated its keys since they were cached: fetch them once more.
        try:
            return validate(await self.key_set(http, refresh=True))
        except InvalidKeyIdError as exc:
            raise LoginFailed("ID_TOKEN_INVALID", "signature: no key for its kid") from exc

    async def userinfo(
        self, http: httpx.AsyncClient, metadata: ProviderMetadata, access_token: str
    ) -> dict[str, Any]:
        """The userinfo claims, as JSON or as a JWT signed with the provider's keys."""
        assert metadata.userinfo_endpoint is not None
        try:
            response = await http.get(
                metadata.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}"},
            )
        except httpx.HTTPError as exc:
            raise LoginUnavailable(f"userinfo endpoint: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise LoginFailed("USERINFO_REFUSED", f"userinfo endpoint: HTTP {response.status_code}")
        if response.headers.get("content-type", "").startswith("application/jwt"):
            return await self._signed_userinfo(http, metadata, response.text.strip())
        try:
            claims = response.json()
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise LoginFailed("USERINFO_REFUSED", "userinfo is not a JSON object")
        return claims

    async def _signed_userinfo(
        self, http: httpx.AsyncClient, metadata: ProviderMetadata, value: str
    ) -> dict[str, Any]:
        keys = await self.key_set(http)
        registry = JWSRegistry(algorithms=metadata.algorithms, strict_check_header=False)
        try:
            claims = dict(jwt.decode(value, keys, registry=registry).claims)
        except JoseError as exc:
            raise LoginFailed("USERINFO_REFUSED", f"userinfo JWT: {type(exc).__name__}") from exc
        if claims.get("iss", metadata.issuer) != metadata.issuer:
            raise LoginFailed("USERINFO_REFUSED", "userinfo JWT from another issuer")
        audience = claims.get("aud", self.client_id)
        if self.client_id not in (audience if isinstance(audience, list) else [audience]):
            raise LoginFailed("USERINFO_REFUSED", "userinfo JWT for another client")
        return claims


def validate_id_token(
    id_token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: str | None,
    algorithms: list[str],
) -> dict[str, Any]:
    """The ID token's claims once its signature, ``iss``, ``aud``/``azp``, ``exp``/``iat``,
    ``nonce`` and ``at_hash`` are checked (OpenID Connect Core §3.1.3.7).

    ``InvalidKeyIdError`` propagates so the caller can refresh the JWKS once.
    """
    registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
    try:
        token = jwt.decode(id_token, keys, registry=registry)
    except InvalidKeyIdError:
        raise
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise LoginFailed("ID_TOKEN_INVALID", f"signature: {type(exc).__name__}") from exc
    claims = CodeIDToken(
        token.claims,
        token.header,
        {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    try:
        claims.validate(leeway=LEEWAY_SECONDS)
    except (JoseError, ValueError, TypeError) as exc:
        raise LoginFailed("ID_TOKEN_INVALID", f"claims: {type(exc).__name__} {exc}") from exc
    return dict(claims)


# --- IO's authLevel and the SPID level ---------------------------------------------------------


def requested_level(state: str) -> str | None:
    """The SPID level the login asked for, from the suffix ``new_state`` gave the state."""
    _, _, suffix = state.rpartition(".")
    return AUTH_LEVELS.get(suffix)


def new_state(auth_level: str | None) -> str:
    token = secrets.token_urlsafe(32)
    return f"{token}.{auth_level}" if auth_level else token


def spid_level(acr: object, requested: str | None) -> str:
    """The level the provider asserted (``acr``); SpidL2 when it names none of SPID's.

    A provider that authenticated at a lower level than the one requested fails the login,
    as IO's SAML login does when the AuthnContextClassRef is below the request.
    """
    level = acr if isinstance(acr, str) and acr in SPID_LEVELS else DEFAULT_SPID_LEVEL
    if requested is not None and SPID_LEVELS.index(level) < SPID_LEVELS.index(requested):
        raise LoginFailed("AUTH_LEVEL_TOO_LOW", "the provider asserted a lower SPID level")
    return level


# --- claims → Identity -------------------------------------------------------------------------


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def fiscal_code_from_claims(claims: dict[str, Any]) -> str:
    """``TINIT-<fiscal code>`` (SPID/CIE OIDC), upper-cased and checked against IO's format."""
    raw = next((v for v in (_text(claims, c) for c in FISCAL_NUMBER_CLAIMS) if v), None)
    if raw is None:
        raise LoginFailed("IDENTITY_INVALID", "no fiscal_number claim")
    value = raw.upper()
    if value.startswith(_TIN_PREFIX):
        value = value[len(_TIN_PREFIX) :]
    if not _FISCAL_CODE.match(value):
        raise LoginFailed("IDENTITY_INVALID", "fiscal_number is not an Italian fiscal code")
    return value


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    fiscal_code = fiscal_code_from_claims(claims)
    name, family_name = _text(claims, "given_name"), _text(claims, "family_name")
    if name is None or family_name is None:
        raise LoginFailed("IDENTITY_INVALID", "no given_name or family_name claim")
    email = _text(claims, "email")
    if email is not None and ("@" not in email or len(email) > 320):
        email = None
    birthdate = _text(claims, "birthdate")
    if birthdate is not None:
        try:
            birthdate = date.fromisoformat(birthdate).isoformat()
        except ValueError:
            birthdate = None
    return Identity(
        fiscal_code=fiscal_code,
        name=name[:200],
        family_name=family_name[:200],
        spid_email=email,
        date_of_birth=birthdate,
    )


def merge_userinfo(id_claims: dict[str, Any], userinfo: dict[str, Any]) -> dict[str, Any]:
    """ID token claims win; userinfo fills the gaps. Userinfo about another subject is refused
    (OpenID Connect Core §5.3.2): it could be a token substitution."""
    if userinfo.get("sub") != id_claims.get("sub"):
        raise LoginFailed("USERINFO_REFUSED", "userinfo is about another subject")
    return {**userinfo, **{k: v for k, v in id_claims.items() if v not in (None, "")}}


def needs_userinfo(claims: dict[str, Any]) -> bool:
    return any(_text(claims, name) is None for name in PERSON_CLAIMS) or all(
        _text(claims, name) is None for name in FISCAL_NUMBER_CLAIMS
    )


# --- logins in flight ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingLogin:
    nonce: str
    code_verifier: str
    requested_level: str | None


async def start_attempt(session: AsyncSession, auth_level: str | None) -> tuple[str, str, str]:
    """Store a new attempt, dropping expired ones; return its state, nonce and PKCE verifier."""
    await session.execute(
        delete(LoginAttempt).where(LoginAttempt.created_at < func.now() - ATTEMPT_TTL)
    )
    state = new_state(auth_level)
    nonce = secrets.token_urlsafe(32)
    # RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
    code_verifier = secrets.token_urlsafe(64)
    session.add(LoginAttempt(state=state, nonce=nonce, code_verifier=code_verifier))
    await session.flush()
    return state, nonce, code_verifier


async def consume_attempt(session: AsyncSession, state: str) -> PendingLogin:
    """Delete the attempt for ``state`` and return it; a state seen before, never issued or
    older than ``ATTEMPT_TTL`` fails the login."""
    row = (
        await session.execute(
            delete(LoginAttempt)
            .where(LoginAttempt.state == state)
            .returning(
                LoginAttempt.nonce,
                LoginAttempt.code_verifier,
                (LoginAttempt.created_at >= func.now() - ATTEMPT_TTL).label("fresh"),
            )
        )
    ).one_or_none()
    if row is None:
        raise LoginFailed("STATE_INVALID", "unknown or already used state")
    if not row.fresh:
        raise LoginFailed("STATE_INVALID", "expired state")
    return PendingLogin(row.nonce, row.code_verifier, requested_level(state))
