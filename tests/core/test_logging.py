"""Logs identify citizens by a keyed reference only: no fiscal code, email or key in clear."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
from structlog.testing import capture_logs

from civio.core.crypto import KeyRing
from tests.factories import Factory, random_fiscal_code, valid_message
from tests.smtp import free_port


async def test_pipeline_logs_carry_a_hash_not_the_fiscal_code(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    known = await factory.citizen(email="someone@example.org")
    unknown = random_fiscal_code()
    with capture_logs() as logs:
        for fc in (known, unknown):
            response = await client.post(
                f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers
            )
            assert response.status_code == 201
        await factory.drain()
    done = [entry for entry in logs if entry["event"] == "messages.process.done"]
    keyring = factory.runtime.keyring
    assert {entry["recipient"] for entry in done} >= {
        keyring.log_ref(known),
        keyring.log_ref(unknown),
    }
    text = repr(logs)
    for secret in (known, unknown, "someone@example.org", sender.key):
        assert secret not in text
    # Nor a plain hash of the fiscal code, which anyone could compute from a guess.
    for fc in (known, unknown):
        assert hashlib.sha256(fc.encode()).hexdigest()[:16] not in text


def test_the_log_reference_is_keyed_by_the_master_key() -> None:
    """Reading the logs without the master key, one cannot check whether a reference
    belongs to a given fiscal code: another key gives another reference."""
    fc = random_fiscal_code()
    one, other = KeyRing(secrets.token_bytes(32)), KeyRing(secrets.token_bytes(32))
    assert one.log_ref(fc) == one.log_ref(fc)
    assert one.log_ref(fc) != other.log_ref(fc)
    assert len(one.log_ref(fc)) == 16


async def test_metrics_count_accepted_and_processed_messages(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    def value(metrics: str, name: str) -> float:
        lines = [line for line in metrics.splitlines() if line.startswith(name + " ")]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    sender = await factory.sender()
    fc = await factory.citizen()
    await factory.drain()
    before = (await client.get("/metrics")).text
    await client.post(f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers)
    await factory.drain()
    after = (await client.get("/metrics")).text
    accepted = "civio_messages_accepted_total"
    processed = 'civio_messages_processed_total{status="PROCESSED"}'
    assert value(after, accepted) == value(before, accepted) + 1
    assert value(after, processed) == value(before, processed) + 1


SERVER_WITH_A_FAILING_ROUTE = """
import sys
from fastapi import FastAPI
from civio.core.problems import handle_unexpected
from civio.core.serving import serve_app

app = FastAPI()
app.add_exception_handler(Exception, handle_unexpected)


@app.get("/boom")
async def boom() -> None:
    raise LookupError("no row for " + sys.argv[2] + " <" + sys.argv[3] + ">")


serve_app(app, "127.0.0.1", int(sys.argv[1]))
"""


def test_the_servers_own_log_of_an_unhandled_error_carries_no_personal_data(
    tmp_path: Path,
) -> None:
    """Starlette hands an unhandled error back to uvicorn after the 500 is sent, and uvicorn
    logs it with its message: over a real server, that log is scrubbed too."""
    fiscal_code, email = random_fiscal_code(), "mario.rossi@example.org"
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER_WITH_A_FAILING_ROUTE)
    server = subprocess.Popen(
        [sys.executable, str(script), str(port), fiscal_code, email],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/boom", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert response.status_code == 500
    finally:
        server.terminate()
        _, logged = server.communicate(timeout=30)
    assert "Exception in ASGI application" in logged
    assert "LookupError: no row for <fiscal code> <<email>>" in logged
    assert fiscal_code not in logged
    assert email not in logged
