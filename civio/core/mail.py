"""Outgoing email: SMTP when ``CIVIO_SMTP_URL`` is set, otherwise a Maildir in the data dir.

The Maildir default keeps a one-laptop install self-contained and still inspectable: every
message civio would have sent is a file under ``<data_dir>/mail/new`` that any mail client
opens (``mutt -f .civio/mail``). Domain code builds an ``EmailMessage`` and calls
``send_mail``; it never knows which transport is configured.

``CIVIO_SMTP_URL`` forms:

* ``smtp://host:port``: plain SMTP, upgraded with STARTTLS when the server offers it;
* ``smtp://user:pass@host:587?starttls=1``: STARTTLS required (``starttls=0`` never tries);
* ``smtps://user:pass@host:465``: TLS from the first byte;
* ``cafile=/path/ca.pem`` trusts a private CA, ``timeout=30`` bounds each SMTP step.

User and password are percent-decoded (``%40`` for ``@``). Errors raised from here name
neither the URL's password nor any address: SMTP servers echo recipients in their replies,
and these errors end up in logs.
"""

from __future__ import annotations

import asyncio
import mailbox
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import jinja2
import structlog

from civio.core.config import Settings

log = structlog.get_logger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
DEFAULT_TIMEOUT_SECONDS = 60.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_OPTIONS = {"starttls", "cafile", "timeout"}


class MailDeliveryError(Exception):
    """The relay did not take the message. ``permanent`` means retrying cannot help (the
    recipient or the content was refused with a 5xx); anything else may be transient."""

    def __init__(self, detail: str, *, permanent: bool = False) -> None:
        super().__init__(detail)
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # Implicit TLS (smtps://).
    use_tls: bool = False
    # True: STARTTLS required; False: never; None: when the server offers it.
    start_tls: bool | None = None
    cert_bundle: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS


def parse_smtp_url(url: str) -> SmtpTarget:
    """Read ``CIVIO_SMTP_URL``; a mistake is a ``ValueError`` that does not echo the URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("CIVIO_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("CIVIO_SMTP_URL has no host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError("CIVIO_SMTP_URL has an invalid port") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _OPTIONS)
    if unknown:
        raise ValueError(f"CIVIO_SMTP_URL: unknown option(s) {', '.join(unknown)}")
    options = {name: values[-1] for name, values in query.items()}

    start_tls: bool | None = None
    if "starttls" in options:
        flag = options["starttls"].lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError("CIVIO_SMTP_URL: starttls must be 1 or 0")
        start_tls = flag in _TRUE
    if scheme == "smtps":
        if start_tls:
            raise ValueError("CIVIO_SMTP_URL: smtps:// is already TLS; starttls=1 does not apply")
        start_tls = False

    timeout = DEFAULT_TIMEOUT_SECONDS
    if "timeout" in options:
        try:
            timeout = float(options["timeout"])
        except ValueError:
            raise ValueError("CIVIO_SMTP_URL: timeout must be a number of seconds") from None
        if timeout <= 0:
            raise ValueError("CIVIO_SMTP_URL: timeout must be positive")

    return SmtpTarget(
        hostname=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_tls=scheme == "smtps",
        start_tls=start_tls,
        cert_bundle=options.get("cafile") or None,
        timeout=timeout,
    )


def maildir_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "mail"


async def send_mail(settings: Settings, message: EmailMessage) -> None:
    """Deliver one message by the configured transport; ``From`` defaults to
    ``CIVIO_MAIL_FROM``, and ``Date`` and ``Message-ID`` are added when missing."""
    _complete_headers(settings, message)
    if settings.smtp_url:
        await _send_smtp(parse_smtp_url(settings.smtp_url), message)
        transport = "smtp"
    else:
        await asyncio.to_thread(_store_in_maildir, maildir_path(settings), message)
        transport = "maildir"
    log.info("mail.sent", transport=transport, message_id=message["Message-ID"])


def _complete_headers(settings: Settings, message: EmailMessage) -> None:
    if message["From"] is None:
        message["From"] = settings.mail_from
    if message["Date"] is None:
        message["Date"] = formatdate(usegmt=True)
    if message["Message-ID"] is None:
        _, address = parseaddr(str(message["From"]))
        domain = address.rpartition("@")[2] or "civio.localhost"
        message["Message-ID"] = make_msgid(domain=domain)


async def _send_smtp(target: SmtpTarget, message: EmailMessage) -> None:
    try:
        await aiosmtplib.send(
            message,
            hostname=target.hostname,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            cert_bundle=target.cert_bundle,
            timeout=target.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = sorted({refused.code for refused in exc.recipients})
        raise MailDeliveryError(
            f"recipient refused ({', '.join(map(str, codes))})",
            permanent=all(code >= 500 for code in codes),
        ) from None
    except aiosmtplib.SMTPDataError as exc:
        raise MailDeliveryError(
            f"message refused ({exc.code})", permanent=exc.code >= 500
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        # Sender refused, authentication failed, …: the relay's or the operator's problem,
        # which a later attempt may no longer have.
        raise MailDeliveryError(f"{type(exc).__name__} ({exc.code})") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailDeliveryError(f"relay unreachable ({type(exc).__name__})") from None


_MAILDIR_LOCK = threading.Lock()


def _store_in_maildir(path: Path, message: EmailMessage) -> None:
    # Maildir writes into tmp/ and renames into new/, so a reader never sees half a file.
    # The folders are made with exist_ok (mailbox's own create= races when two threads
    # deliver the first mail of a fresh data dir), and the lock serialises mailbox's
    # process-wide counter that keeps the file names of one microsecond apart.
    for folder in ("tmp", "new", "cur"):
        (path / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    with _MAILDIR_LOCK:
        mailbox.Maildir(path, create=False).add(message)


# --- composing: templated, multilingual, text + HTML ---------------------------------------


@cache
def template_environment(package: str) -> jinja2.Environment:
    return jinja2.Environment(
        # The package's own templates, then the shared mail shell (core/templates/mail).
        loader=jinja2.ChoiceLoader(
            [jinja2.PackageLoader(package, "templates"), jinja2.PackageLoader("civio.core")]
        ),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def compose_mail(
    settings: Settings,
    *,
    package: str,
    template: str,
    lang: str,
    to: str,
    context: dict[str, Any],
    subject: str | None = None,
) -> EmailMessage:
    """A mail from ``<template>/<lang>.txt`` and ``.html`` in ``package``'s templates.

    The subject is the given one, or the one the language's ``.txt`` template sets
    (``{% set subject = … %}``), so each language's wording lives in its own files.
    """
    environment = template_environment(package)
    context = {**context, "lang": lang}
    if subject is not None:
        context["subject"] = subject
    text_module = environment.get_template(f"{template}/{lang}.txt").make_module(context)
    chosen = subject if subject is not None else str(getattr(text_module, "subject"))  # noqa: B009
    html = environment.get_template(f"{template}/{lang}.html").render(
        {**context, "subject": chosen}
    )
    message = EmailMessage()
    message["Subject"] = chosen
    message["From"] = settings.mail_from
    message["To"] = to
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(str(text_module))
    message.add_alternative(html, subtype="html")
    # After the body: set_content() drops every Content-* header set before it.
    message["Content-Language"] = lang
    return message
