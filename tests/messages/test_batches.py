"""Concurrent accepts share a commit, and the worker decides a whole batch at once: each
message must still get exactly its own outcome, and a bad one must not hold back the rest."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from sqlalchemy import func, select, text, update

from civio.core.db import transaction
from civio.messages.models import MessageStatusChange
from civio.messages.pipeline import job_refs, process_message_job
from civio.services.models import Service
from tests.factories import Factory, Sender, random_fiscal_code, valid_message


async def send_concurrently(
    client: httpx.AsyncClient, sends: list[tuple[Sender, str]]
) -> list[str]:
    responses = await asyncio.gather(
        *(
            client.post(f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers)
            for sender, fc in sends
        )
    )
    assert [r.status_code for r in responses] == [201] * len(sends)
    return [str(r.json()["id"]) for r in responses]


async def jobs_covering(factory: Factory, message_ids: set[str]) -> list[list[str]]:
    async with factory.runtime.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT payload FROM pgqueuer WHERE entrypoint = 'messages.process'")
        )
        batches = [[mid for _, mid in job_refs(orjson.loads(p))] for (p,) in rows]
    return [batch for batch in batches if message_ids & set(batch)]


async def test_concurrent_accepts_each_get_their_own_outcome_in_shared_batches(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await factory.drain()
    allowed, blocked = await factory.sender(), await factory.sender()
    reachable = [await factory.citizen() for _ in range(3)]
    blocking = await factory.citizen(block=[blocked.service_id])
    unknown = random_fiscal_code()
    sends = [(allowed, fc) for fc in reachable] * 5
    sends += [(blocked, blocking), (allowed, blocking), (allowed, unknown)] * 5
    ids = await send_concurrently(client, sends)

    # Every accepted message is durably queued: each id is covered by exactly one job.
    batches = await jobs_covering(factory, set(ids))
    covered = [mid for batch in batches for mid in batch]
    assert sorted(covered) == sorted(ids)
    # ...and concurrent accepts shared commits: fewer jobs (transactions) than messages.
    assert len(batches) < len(ids), [len(b) for b in batches]

    await factory.drain()
    expected = {
        (allowed.service_id, "reachable"): ("PROCESSED", None),
        (blocked.service_id, "blocking"): ("REJECTED", "SERVICE_NOT_ALLOWED"),
        (allowed.service_id, "blocking"): ("PROCESSED", None),
        (allowed.service_id, "unknown"): ("REJECTED", "USER_NOT_FOUND"),
    }
    kind = dict.fromkeys(reachable, "reachable") | {blocking: "blocking", unknown: "unknown"}
    for (sender, fc), mid in zip(sends, ids, strict=True):
        row = await factory.message_row(fc, mid)
        assert (row.status, row.rejection_reason) == expected[sender.service_id, kind[fc]]
        assert (row.content_ciphertext is None) == (row.status == "REJECTED")
    async with factory.runtime.sessions() as session:
        changes = await session.scalar(
            select(func.count()).where(MessageStatusChange.message_id.in_(ids))
        )
    assert changes == len(ids)  # one status change each, none lost or doubled


async def test_a_failing_message_does_not_hold_back_the_rest_of_its_batch(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    await factory.drain()
    healthy, vanishing = await factory.sender(), await factory.sender()
    fc = await factory.citizen()
    good = await send_concurrently(client, [(healthy, fc)] * 3)
    [bad] = await send_concurrently(client, [(vanishing, fc)])
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(
            update(Service)
            .where(Service.service_id == vanishing.service_id)
            .values(service_id=vanishing.service_id + "-gone")
        )
    # One job for all four, as a group commit would have written it.
    refs = [[fc, mid] for mid in [*good, bad]]
    await process_message_job(factory.runtime, {"messages": refs})
    for mid in good:
        assert (await factory.message_row(fc, mid)).status == "PROCESSED"
    row = await factory.message_row(fc, bad)
    assert row.status == "ACCEPTED"  # retried later, alone, with its own attempt count
    assert row.processing_attempts == 1
