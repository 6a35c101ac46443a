"""Logs identify citizens by a hash only: no fiscal code, email or key in clear."""

from __future__ import annotations

import httpx
from structlog.testing import capture_logs

from civio.core.crypto import log_ref
from tests.factories import Factory, random_fiscal_code, valid_message


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
    assert {entry["recipient"] for entry in done} >= {log_ref(known), log_ref(unknown)}
    text = repr(logs)
    for secret in (known, unknown, "someone@example.org", sender.key):
        assert secret not in text


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
