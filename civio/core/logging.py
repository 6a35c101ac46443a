"""Structured JSON logs. Events are dotted names; values never include a fiscal code,
an email or a key (log ``keyring.log_ref(fc)`` instead).

Tracebacks are logged, but only through ``safe_traceback``: the frames in full, the
exception messages scrubbed of what can carry personal data (the SQL parameters and the
``DETAIL`` lines the database driver quotes, fiscal codes, emails). Locals are never
captured.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog

from civio.core.types import FISCAL_CODE_PATTERN

MAX_TRACEBACK_CHARS = 8_000
MAX_MESSAGE_CHARS = 1_000

_FISCAL_CODE = re.compile(
    r"(?<![A-Za-z0-9])" + FISCAL_CODE_PATTERN.strip("^$") + r"(?![A-Za-z0-9])", re.IGNORECASE
)
_EMAIL = re.compile(r"[^\s@'\"<>(),;:\[\]]+@[^\s@'\"<>(),;:\[\]]+\.[A-Za-z]{2,}")
# SQLAlchemy appends the bound parameters on one line (their repr has no raw newline).
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
# PostgreSQL's DETAIL quotes row values ("Key (fiscal_code)=(…) already exists").
_DETAIL = re.compile(r"^\s*DETAIL:.*$", re.MULTILINE)


def scrub(message: str) -> str:
    """An exception message with what may identify a citizen taken out."""
    message = _SQL_PARAMETERS.sub("[parameters: hidden]", message)
    message = _DETAIL.sub("DETAIL: hidden", message)
    message = _FISCAL_CODE.sub("<fiscal code>", message)
    message = _EMAIL.sub("<email>", message)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    return message


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, oldest first, as Python prints them."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain[::-1]


def safe_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` (causes included) with every message scrubbed."""
    parts: list[str] = []
    chain = _chain(exc)
    for index, item in enumerate(chain):
        if index:
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if item.__cause__ is chain[index - 1]
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if item.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            # Source lines are civio's code, but a literal in it can look like personal data.
            frames = "".join(traceback.format_list(traceback.extract_tb(item.__traceback__)))
            parts.append(_EMAIL.sub("<email>", _FISCAL_CODE.sub("<fiscal code>", frames)))
        kind = type(item)
        name = kind.__qualname__
        if kind.__module__ not in ("builtins", "__main__"):
            name = f"{kind.__module__}.{name}"
        message = scrub(str(item))
        parts.append(f"{name}: {message}\n" if message else f"{name}\n")
    rendered = "".join(parts)
    if len(rendered) > MAX_TRACEBACK_CHARS:
        rendered = "…" + rendered[-MAX_TRACEBACK_CHARS:]
    return rendered


def _render_exc_info(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog's ``format_exc_info``, through ``safe_traceback``: ``log.exception`` (the
    HTTP layer's unhandled errors, for one) never writes SQL parameters or fiscal codes."""
    exc_info = event.pop("exc_info", None)
    if not exc_info:
        return event
    if isinstance(exc_info, BaseException):
        exc: BaseException | None = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        exc = sys.exc_info()[1]
    if exc is not None:
        event["exception"] = safe_traceback(exc)
    return event


class ScrubbingFormatter(logging.Formatter):
    """For the standard-library loggers (uvicorn's, pgqueuer's, SQLAlchemy's): the message
    and the traceback go through the same scrub as civio's own events. uvicorn logs the
    full exception of an unhandled request error, and a driver's message may quote a
    value."""

    def format(self, record: logging.LogRecord) -> str:
        message = scrub(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}\n{safe_traceback(record.exc_info[1])}"
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {message}"


# The standard-library logging of a server process, for uvicorn's ``log_config``.
STDLIB_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"scrubbed": {"()": "civio.core.logging.ScrubbingFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "scrubbed",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "propagate": False},
    },
}


class _CurrentStderrLogger:
    """Writes each line to whatever ``sys.stderr`` is *now*: a logger bound to the stream of
    the moment (structlog's default) keeps writing to it after a test runner or a CLI
    wrapper has swapped and closed it."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure_logging(level: str = "INFO", *, json: bool = True, cache: bool = True) -> None:
    """``cache`` binds each logger once, on first use: right for long-running processes;
    short CLI commands (and tests that run them in-process and capture logs) pass False."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _render_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=lambda *_: _CurrentStderrLogger(),
        cache_logger_on_first_use=cache,
    )
