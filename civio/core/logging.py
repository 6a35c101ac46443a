"""Structured JSON logs. Events are dotted names; values never include a fiscal code,
an email or a key (log ``crypto.log_ref(fc)`` instead)."""

from __future__ import annotations

import logging
import sys

import structlog


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
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=lambda *_: _CurrentStderrLogger(),
        cache_logger_on_first_use=cache,
    )
