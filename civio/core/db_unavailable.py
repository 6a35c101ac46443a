"""Telling "the database cannot be reached right now" apart from every other error.

While PostgreSQL restarts, fails over or is out of connections, each layer raises its own
exception: asyncpg's connection errors (SQLSTATE class 08) and operator interventions
(57P01 admin shutdown, 57P02 crash shutdown, 57P03 "the database system is starting up"),
asyncpg's "connection is closed" when a cut connection is used again (pgqueuer's),
SQLAlchemy's wrappers of them (``DBAPIError`` with ``connection_invalidated`` when a pooled
connection turned out dead), SQLAlchemy's pool timeout, and plain ``OSError`` (connection
refused, the Unix socket gone, a connect timeout) from asyncpg's connect. These are
transient by nature: the API answers 503 with ``Retry-After`` and the worker keeps its jobs
for later, instead of a 500 or a job dropped as failed.
"""

from __future__ import annotations

import errno
import socket
import traceback

import asyncpg
import sqlalchemy.exc

# Server-side states in which the same statement will work once the server is back.
_OUTAGE_STATES = (
    asyncpg.exceptions.PostgresConnectionError,  # class 08, incl. "connection does not exist"
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
# The exception classes a handler must be registered for (the test walks their causes).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    OSError,
)
_DRIVER_MODULES = ("asyncpg", "sqlalchemy")


def is_database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) means the database is unreachable for now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_outage(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return True  # no pooled connection freed up in time
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc.connection_invalidated or (
            exc.orig is not None and isinstance(exc.orig, _OUTAGE_STATES)
        )
    if isinstance(exc, _OUTAGE_STATES):
        return True
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        # Using a connection the server has cut (SQLAlchemy's own test for a disconnect).
        return "connection is closed" in str(exc)
    if isinstance(exc, OSError):
        return _raised_by_driver(exc) or _is_socket_error(exc)
    return False


def _is_socket_error(exc: OSError) -> bool:
    """A socket-level failure, whoever raised it. A traceback is not always there to say
    who did: an error shared through a future (one lookup serving many requests) carries
    the traceback of whichever waiter re-raised it last. The other network clients civio
    uses (httpx, aiosmtplib) wrap their socket errors, so a bare one is the database's."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    return exc.errno == errno.ENOENT and exc.filename is None  # a Unix socket gone


def _raised_by_driver(exc: BaseException) -> bool:
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DRIVER_MODULES:
            return True
    return False
