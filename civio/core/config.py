"""One typed settings object, read from ``CIVIO_*`` environment variables.

Domain code receives settings; it never reads ``os.environ`` itself, so tests can build
their own instance explicitly.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    dev = "dev"
    production = "production"


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVIO_", extra="ignore")

    env: Environment = Environment.dev
    data_dir: Path = Path(".civio")
    # External PostgreSQL; when empty the embedded cluster in data_dir is used.
    database_url: str = ""
    master_key: str = ""
    admin_token: str = ""
    sandbox_fiscal_code: str = "AAAAAA00A00A000A"
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Gateway rate limit (IO's APIM default: 150 calls per 5 s per owner).
    rate_limit_calls: int = 150
    rate_limit_calls_250: int = 250
    rate_limit_window_seconds: int = 5

    # Request bodies above this size get 413.
    max_body_bytes: int = 1024 * 1024

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
    # POST /api/auth/v1/test-login: dev only, with this password.
    test_login_password: str = "civio-dev-password"  # noqa: S105 - dev-only default, printed
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

    @property
    def is_dev(self) -> bool:
        return self.env == Environment.dev


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
