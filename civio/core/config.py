"""One typed settings object, read from ``CIVIO_*`` environment variables.

Domain code receives settings; it never reads ``os.environ`` itself, so tests can build
their own instance explicitly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    dev = "dev"
    production = "production"


# Shorter admin tokens are refused: the admin API can create services and read keys.
MIN_ADMIN_TOKEN_LENGTH = 32


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIO_", extra="ignore")

    # Unset: decided by ``decide_mode`` (dev only when obviously local); until decided,
    # a Settings behaves as production.
    env: Environment | None = None
    data_dir: Path = Path(".civio")
    # External PostgreSQL; when empty the embedded cluster in data_dir is used.
    database_url: str = ""
    master_key: str = ""
    admin_token: str = ""
    sandbox_fiscal_code: str = "AAAAAA00A00A000A"
    # What the management API sets max_allowed_payment_amount to when an operator approves
    # a service (IO's MAX_ALLOWED_PAYMENT_AMOUNT, euro cents).
    max_allowed_payment_amount: int = Field(default=1_000_000, ge=0, le=9_999_999_999)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Gateway rate limit (IO's APIM default: 150 calls per 5 s per owner), one limit for
    # every process of the deployment (civio/services/ratelimit.py): counted in PostgreSQL,
    # or in Redis when redis_url is set (redis://[:password@]host:6379/0, rediss:// for TLS).
    rate_limit_calls: int = Field(default=150, ge=1)
    rate_limit_calls_250: int = Field(default=250, ge=1)
    rate_limit_window_seconds: int = Field(default=5, ge=1)
    redis_url: str = ""

    # Request bodies above this size get 413.
    max_body_bytes: int = 1024 * 1024

    # The HTTP edge (civio/core/http.py; the request head bounds are in core/serving.py).
    # When set, GET /metrics answers only "Authorization: Bearer <metrics_token>" (401
    # otherwise); the probes /healthz and /readyz stay open.
    metrics_token: str = ""

    # Group commit: at most this many concurrent accepts share one transaction.
    accept_max_batch: int = 200

    # HTTP server processes of ``civio serve`` (each with its own in-process worker).
    processes: int = 1

    # Worker.
    run_worker: bool = True
    worker_batch_size: int = 50
    worker_concurrency: int = 64
    job_heartbeat_timeout_seconds: float = 30.0
    process_max_attempts: int = 5
    # pgqueuer writes a log row per job state change; rows older than this are pruned by
    # every continuous worker (0 keeps them forever).
    queue_log_retention_hours: float = 24.0
    queue_log_prune_seconds: float = 300.0

    # How long a service/key lookup may be served from the in-process cache.
    service_cache_seconds: float = 1.0

    # Pending activation grace period for SPECIAL services.
    pending_activation_grace_seconds: int = 86400

    # Citizens' sessions.
    session_ttl_seconds: int = 30 * 24 * 3600
    # POST /api/auth/v1/test-login: dev only, with this password; unset, a random one is
    # generated once per data dir (<data_dir>/test-login.password, mode 0600).
    test_login_password: str = ""
    # Wrong test-login passwords (per client and per username) and wrong admin tokens (per
    # client) allowed per window before further attempts get 429.
    credential_failure_limit: int = 10
    credential_failure_window_seconds: float = 300.0
    # OpenID Connect provider (SPID/CIE OIDC or any IdP).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    # Where the browser lands after login; the session token is appended as #token=…
    login_success_url: str = "/profile.html"
    login_failure_url: str = "/error.html"
    # The public base URL of this server, for links in emails and OIDC redirect URIs.
    public_url: str = "http://127.0.0.1:8000"

    # Email: SMTP when set (smtp://user:pass@host:port, smtps://… for TLS, ?starttls=1),
    # otherwise a Maildir in <data_dir>/mail.
    smtp_url: str = ""
    mail_from: str = "civio <no-reply@civio.localhost>"
    email_validation_ttl_seconds: int = 30 * 24 * 3600
    # Where the citizen's browser is sent after following a validation link.
    email_validation_confirm_url: str = "/email-confirm.html"
    email_validation_callback_url: str = "/email-validated.html"

    # Notification retries: exponential from this base, capped, until the message's TTL.
    notification_retry_base_seconds: float = 5.0
    notification_retry_max_seconds: float = 600.0

    # Push for apns/fcmv1 installations: a gorush-compatible gateway's push endpoint
    # (e.g. http://gorush:8088/api/push); unset: those pushes fail.
    push_gateway_url: str = ""
    # Web Push (VAPID, RFC 8292): the base64url private key (as `web-push generate-vapid-keys`
    # prints it); in dev a generated <data_dir>/vapid.key is used when unset.
    vapid_private_key: str = ""
    # The VAPID contact (mailto: or https:); unset: mailto: the address of mail_from.
    vapid_subject: str = ""

    # read_status for ADVANCED messages is UNAVAILABLE for app versions below this (unset:
    # no check, since web readers have no app version).
    min_app_version_with_read_auth: str = ""

    # Sender callbacks (docs/callbacks.md): one POST at a time per service, in event order.
    callback_timeout_seconds: float = 5.0
    callback_max_attempts: int = 5
    # Retries (network errors, 5xx, 429): exponential from this base with jitter, capped;
    # a Retry-After header is honoured up to its own cap.
    callback_retry_base_seconds: float = 5.0
    callback_retry_max_seconds: float = 300.0
    callback_retry_after_max_seconds: float = 300.0
    # How often a running worker re-queues delivery for services with pending events (a
    # safety net: delivery is normally queued when the event is recorded).
    callback_sweep_seconds: float = 30.0

    # Outbound calls to URLs that citizens and senders choose (Web Push endpoints, callback
    # URLs): outside dev only public addresses are called, checked at registration and at
    # every connection (docs/outbound.md). These networks (CSV of CIDRs, e.g. a push relay
    # inside the deployment) are allowed as well. Empty by default.
    outbound_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("outbound_allowed_networks", mode="before")
    @classmethod
    def _outbound_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("outbound_allowed_networks")
    @classmethod
    def _outbound_networks(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(item, strict=False)) for item in value]

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: str) -> str:
        if value and len(value) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(
                f"CIVIO_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LENGTH} characters "
                "(for example: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @property
    def is_dev(self) -> bool:
        return self.env == Environment.dev


@dataclass(frozen=True)
class Mode:
    """The environment a process runs in, and the reason, for the start-up banner."""

    env: Environment
    reason: str


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def decide_mode(settings: Settings, host: str | None = None) -> Mode:
    """Dev only when asked for or obviously local; production otherwise.

    Dev mode serves the password test login, under which anyone may open any citizen's
    inbox, so an operator who forgets ``CIVIO_ENV`` must not get it: an external database
    or a listening address other than loopback is a deployment, hence production.
    ``host`` is the address ``civio serve`` binds (None for commands that serve nothing).
    """
    if settings.env is not None:
        return Mode(settings.env, f"CIVIO_ENV={settings.env.value}")
    if settings.database_url:
        return Mode(Environment.production, "CIVIO_DATABASE_URL names an external database")
    if host is not None and not _is_loopback(host):
        return Mode(Environment.production, f"{host} is not a loopback address")
    where = f"on {host}" if host is not None else "on this machine"
    return Mode(Environment.dev, f"embedded database, {where} only")


def dev_beyond_loopback(settings: Settings, host: str) -> bool:
    """Dev mode asked for while listening on an address others can reach: the banner warns,
    since anyone who reaches it can log in as any citizen. An external database on a
    loopback address is dev by request too, but reachable from this machine only."""
    return settings.is_dev and not _is_loopback(host)


def with_mode(settings: Settings, host: str | None = None) -> tuple[Settings, Mode]:
    """``settings`` with its environment decided (see ``decide_mode``)."""
    mode = decide_mode(settings, host)
    return settings.model_copy(update={"env": mode.env}), mode


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
