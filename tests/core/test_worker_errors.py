"""A failing job is logged with its traceback, and the traceback carries no personal data:
no fiscal code (in an exception's message or in the SQL parameters the database driver
quotes), no email.

The failures are real: a trigger created by the test makes PostgreSQL refuse the pipeline's
update of one citizen's message, with an error that names the fiscal code.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import structlog
from sqlalchemy import text
from structlog.testing import capture_logs

from civio.core.logging import configure_logging, safe_traceback
from tests.factories import Factory, valid_message

EMAIL = "mario.rossi@example.org"


@asynccontextmanager
async def refusing_updates(factory: Factory, fiscal_code: str, when: str) -> AsyncIterator[None]:
    """PostgreSQL raises (naming the fiscal code and an email) on this citizen's message
    updates that match ``when``."""
    async with factory.runtime.engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE FUNCTION tests_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'refused update for % (%)', NEW.fiscal_code, "
                f"'{EMAIL}'; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER tests_refuse_update BEFORE UPDATE ON messages FOR EACH ROW "
                f"WHEN (NEW.fiscal_code = '{fiscal_code}' AND {when}) "
                "EXECUTE FUNCTION tests_refuse_update()"
            )
        )
    try:
        yield
    finally:
        async with factory.runtime.engine.begin() as connection:
            await connection.execute(text("DROP TRIGGER tests_refuse_update ON messages"))
            await connection.execute(text("DROP FUNCTION tests_refuse_update()"))


async def send(client: httpx.AsyncClient, factory: Factory) -> tuple[str, str]:
    await factory.drain()
    sender = await factory.sender()
    fc = await factory.citizen()
    response = await client.post(
        f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers
    )
    assert response.status_code == 201
    return fc, response.json()["id"]


def assert_clean(text_: str, fiscal_code: str) -> None:
    for secret in (fiscal_code, fiscal_code.lower(), EMAIL):
        assert secret not in text_


async def test_a_processing_retry_is_logged_with_a_clean_traceback(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    fc, message_id = await send(client, factory)
    # Only the outcome update fails: the retry bookkeeping still works.
    async with refusing_updates(factory, fc, "NEW.status <> OLD.status"):
        with capture_logs() as logs:
            await factory.drain()
    [retry] = [e for e in logs if e["event"] == "messages.process.retry"]
    assert retry["message_id"] == message_id
    traceback = retry["traceback"]
    assert "Traceback (most recent call last)" in traceback
    assert "process_messages" in traceback  # the frame that failed
    assert "refused update for" in traceback  # the database's own words are kept
    assert_clean(repr(logs), fc)


async def test_a_job_that_fails_is_logged_and_recorded_with_a_clean_traceback(
    client: httpx.AsyncClient, factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    fc, message_id = await send(client, factory)
    # Every update of the message fails, the retry bookkeeping too: the job itself fails.
    async with refusing_updates(factory, fc, "true"):
        with capture_logs() as logs, caplog.at_level(logging.ERROR):
            await factory.drain()
    [failed] = [e for e in logs if e["event"] == "worker.job.failed"]
    assert failed["task"] == "messages.process"
    assert "Traceback (most recent call last)" in failed["traceback"]
    assert "_retry_or_fail" in failed["traceback"]
    assert_clean(repr(logs), fc)
    # What the queue library logs and stores of the failure is the clean version too.
    assert_clean(caplog.text, fc)
    async with factory.runtime.engine.connect() as connection:
        stored = [
            row
            for (row,) in await connection.execute(
                text("SELECT traceback::text FROM pgqueuer_log WHERE traceback IS NOT NULL")
            )
        ]
    records: list[dict[str, Any]] = [orjson.loads(row) for row in stored]
    mine = [r for r in records if "refused update" in r["traceback"]]
    assert mine
    assert_clean(repr(mine), fc)
    assert (await factory.message_row(fc, message_id)).status == "ACCEPTED"


def test_safe_traceback_drops_sql_parameters_details_fiscal_codes_and_emails() -> None:
    try:
        try:
            raise LookupError("no profile for RSSMRA80A01H501U <mario@example.org>")
        except LookupError as exc:
            raise RuntimeError(
                "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) duplicate key\n"
                "DETAIL:  Key (fiscal_code)=(VRDLGI70B02F205X) already exists.\n"
                "[SQL: INSERT INTO profiles (fiscal_code) VALUES ($1)]\n"
                "[parameters: ('a free-text value',)]"
            ) from exc
    except RuntimeError as exc:
        rendered = safe_traceback(exc)
    assert "LookupError: no profile for <fiscal code> <<email>>" in rendered
    assert "The above exception was the direct cause" in rendered
    assert "[SQL: INSERT INTO profiles (fiscal_code) VALUES ($1)]" in rendered
    for secret in ("RSSMRA80A01H501U", "VRDLGI70B02F205X", "mario@example.org", "free-text"):
        assert secret not in rendered


def test_log_exception_writes_the_clean_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """Any ``log.exception`` (the HTTP layer's unhandled errors, for one) goes through the
    same scrubbing as the worker's failures."""
    configure_logging("INFO", json=True, cache=False)
    try:
        raise LookupError("no profile for RSSMRA80A01H501U\n[parameters: ('x@example.org',)]")
    except LookupError:
        structlog.get_logger("tests").exception("tests.failed")
    [line] = [line for line in capsys.readouterr().err.splitlines() if "tests.failed" in line]
    entry = orjson.loads(line)
    assert "LookupError: no profile for <fiscal code>" in entry["exception"]
    assert "RSSMRA80A01H501U" not in line
    assert "x@example.org" not in line
