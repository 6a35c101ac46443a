"""The job queue's log table does not grow forever: workers prune it past the retention."""

from __future__ import annotations

import dataclasses

from sqlalchemy import text

from civio.core.queue import prune_queue_log
from tests.factories import Factory


async def test_log_rows_past_the_retention_are_pruned_and_recent_ones_kept(
    factory: Factory,
) -> None:
    runtime = factory.runtime
    marker = "tests.prune-marker"
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority, created) "
                "SELECT n, 'successful', :marker, 0, now() - make_interval(hours => n) "
                "FROM generate_series(1, 48) AS n"
            ),
            {"marker": marker},
        )
    pruning = dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"queue_log_retention_hours": 24.5})
    )
    assert await prune_queue_log(pruning) >= 24
    async with runtime.engine.connect() as connection:
        kept = await connection.scalar(
            text("SELECT count(*) FROM pgqueuer_log WHERE entrypoint = :marker"),
            {"marker": marker},
        )
    assert kept == 24  # 1..24 hours old stay, 25..48 went
