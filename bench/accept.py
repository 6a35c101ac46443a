"""The accept and pipeline sections: messages/s accepted, and how the worker keeps up.

One embedded platform (``civio serve``, API and in-process worker, as ``make run``), one
service with ``ApiNoRateLimit`` and ``--citizens`` recipients. Phases:

1. ``/healthz`` — civio's own stack without the database, at full concurrency (for the
   ratio to the hello-world limit: what civio's middleware costs);
2. warm-up, drained;
3. full load — ``POST /api/v1/messages/{fc}`` from wrk (64 connections, a Lua script
   cycling the recipients) for ``--duration`` s (60). The **accept** section reports
   messages/s (HTTP 201), HTTP p50/p99 and every non-201 answer or socket error; the
   **pipeline** section reports what the worker PROCESSED per second during the same
   window, the backlog (ACCEPTED) sampled every second, how fast it grew over the second
   half of the window, and whether the worker kept up;
4. half load (pipeline only) — open-loop paced requests at half the accept rate just
   measured for ``--half-duration`` s; accept→PROCESSED p50/p99 from
   ``messages.status_at - created_at``.

``python bench/accept.py [options]`` is ``python bench/run.py --only accept,pipeline``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import asyncpg
from common import (
    Backlog,
    Cpu,
    CpuMeter,
    Generator,
    Load,
    Platform,
    Target,
    log,
    statuses,
    wait_until_processed,
)

WINDOW_SQL = """
SELECT status,
       count(*) AS n,
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM status_at - created_at)::float8) AS latency,
       max(extract(epoch FROM status_at - created_at)::float8) AS worst
FROM messages
WHERE created_at >= $1 AND created_at < $2
GROUP BY status
"""
PROCESSED_IN_SQL = """
SELECT count(*) FROM messages
WHERE status = 'PROCESSED' AND status_at >= $1 AND status_at < $2
"""


def growth_per_s(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of the backlog (messages/s) over the second half of the samples."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return 0.0
    mean_t = sum(t for t, _ in half) / len(half)
    mean_b = sum(b for _, b in half) / len(half)
    spread = sum((t - mean_t) ** 2 for t, _ in half)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (b - mean_b) for t, b in half) / spread


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def window_latency(
    connection: asyncpg.Connection, since: datetime, until: datetime
) -> dict[str, Any]:
    """Statuses and accept→PROCESSED p50/p99/max of the messages created in a window."""
    rows = await connection.fetch(WINDOW_SQL, since, until)
    processed = next((row for row in rows if row["status"] == "PROCESSED"), None)
    p50, p99 = processed["latency"] if processed else (None, None)
    return {
        "statuses": {row["status"]: row["n"] for row in rows},
        "created": sum(row["n"] for row in rows),
        "accept_to_processed_p50_ms": ms(p50),
        "accept_to_processed_p99_ms": ms(p99),
        "accept_to_processed_max_ms": ms(processed["worst"]) if processed else None,
    }


async def loaded_phase(
    connection: asyncpg.Connection,
    backlog: Backlog,
    meter: CpuMeter,
    load: Coroutine[Any, Any, Load],
    drain_timeout: float,
    label: str,
) -> tuple[Load, dict[str, Any], Cpu]:
    """Run ``load`` while sampling the backlog every second; then drain and read the table."""
    since = datetime.now(UTC)
    started = time.perf_counter()
    samples: list[tuple[float, int]] = []

    async def sample() -> None:
        while True:
            count = await backlog.count()
            elapsed = time.perf_counter() - started
            samples.append((round(elapsed, 2), count))
            if len(samples) % 10 == 0:
                log(f"{label}: {elapsed:4.0f} s, backlog {count:,} ACCEPTED")
            await asyncio.sleep(1.0)

    with meter.measure() as cpu:
        sampler = asyncio.create_task(sample())
        try:
            result: Load = await load
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    until = datetime.now(UTC)
    window = (until - since).total_seconds()
    at_end = await backlog.count()
    processed_in_window = await connection.fetchval(PROCESSED_IN_SQL, since, until)
    drain = await wait_until_processed(backlog, connection, drain_timeout)
    latency = await window_latency(connection, since, until)
    accepted_rate = latency["created"] / window if window else 0.0
    processed_rate = processed_in_window / window if window else 0.0
    growth = growth_per_s(samples)
    figures = {
        "window_s": round(window, 1),
        "accepted_per_s": round(accepted_rate, 1),
        "processed_per_s": round(processed_rate, 1),
        "processed_in_window": processed_in_window,
        "backlog_at_end": at_end,
        "backlog_max": max([at_end, *(count for _, count in samples)]),
        "backlog_growth_per_s": round(growth, 1),
        # No growing backlog: over the second half of the window it grew by at most 1% of
        # the accept rate, or what is left at the end is less than one second of accepts
        # (a sawtooth of batches then makes the slope noise, not a trend).
        "keeps_up": growth <= 0.01 * accepted_rate or at_end <= accepted_rate,
        "drain_seconds": round(drain, 1),
        **latency,
        "backlog_samples": samples,
    }
    return result, figures, cpu


async def phases(platform: Platform, args: argparse.Namespace, wanted: set[str]) -> dict[str, Any]:
    await platform.probe()
    generator = Generator(platform.base, platform.key, platform.data_dir)
    if generator.wrk is None:
        log("accept: wrk is not on PATH (apt-get install -y wrk); using the Python generator")
    accept = platform.message_target()
    meter = CpuMeter(platform.server.pid, platform.postmaster)
    connection = await asyncpg.connect(platform.database_url)
    await connection.execute("SET plan_cache_mode = force_custom_plan")
    backlog = Backlog(connection, platform.service_id)
    out: dict[str, Any] = {}
    try:
        healthz = None
        if args.healthz_duration > 0:
            log(f"accept: civio GET /healthz, {args.healthz_duration:g} s")
            with meter.measure() as healthz_cpu:
                healthz = await generator.closed_loop(
                    Target("GET", ["/healthz"], 200), args.concurrency, args.healthz_duration
                )
        if args.warmup > 0:
            log(f"accept: warm-up {args.warmup:g} s, then drain")
            await generator.closed_loop(accept, args.concurrency, args.warmup)
            await wait_until_processed(backlog, connection, args.drain_timeout)
        log(
            f"accept: full load, {args.concurrency} connections, {args.duration:g} s "
            f"({generator.name})"
        )
        full, pipeline, full_cpu = await loaded_phase(
            connection,
            backlog,
            meter,
            generator.closed_loop(accept, args.concurrency, args.duration),
            args.drain_timeout,
            "accept",
        )
        log(
            f"accept: {full.rate:,.0f} msg/s, p99 {full.p99_ms:,.0f} ms, "
            f"{full.unexpected + full.errors} errors; processed {pipeline['processed_per_s']:,.0f}"
            f"/s, backlog at end {pipeline['backlog_at_end']:,} (drained in "
            f"{pipeline['drain_seconds']:g} s)"
        )
        out["accept"] = {
            "endpoint": "POST /api/v1/messages/{fiscal_code}",
            "connections": args.concurrency,
            "citizens": len(platform.codes),
            **full.summary(),
            "errors_total": full.unexpected + full.errors,
            "cpu_cores": asdict(full_cpu),
        }
        if healthz is not None:
            out["accept"]["healthz"] = {
                "endpoint": "GET /healthz (civio's middleware, no database)",
                **healthz.summary(),
                "cpu_cores": asdict(healthz_cpu),
            }
        if "pipeline" in wanted:
            half_rate = max(1.0, full.rate / 2)
            log(f"pipeline: half load, {half_rate:,.0f} msg/s paced for {args.half_duration:g} s")
            half, half_figures, half_cpu = await loaded_phase(
                connection,
                backlog,
                meter,
                generator.paced(accept, half_rate, args.half_duration, args.concurrency),
                args.drain_timeout,
                "pipeline half load",
            )
            log(
                "pipeline: half load accept→PROCESSED p50 "
                f"{half_figures['accept_to_processed_p50_ms']} ms, p99 "
                f"{half_figures['accept_to_processed_p99_ms']} ms"
            )
            out["pipeline"] = {
                "worker": "in-process (civio serve)",
                **pipeline,
                "half_load": {
                    "target_per_s": round(half_rate, 1),
                    **half.summary(),
                    **half_figures,
                    "cpu_cores": asdict(half_cpu),
                    "server_cpu_ms_per_message": (
                        round(half_cpu.server / half.rate * 1000, 2) if half.rate else None
                    ),
                },
            }
        out["postgres"] = await connection.fetchval("SHOW server_version")
        out["statuses"] = await statuses(connection)
    finally:
        await connection.close()
    return out


def run(args: argparse.Namespace, wanted: set[str]) -> dict[str, Any]:
    """The ``accept`` and/or ``pipeline`` sections (both come from one full-load run)."""
    with Platform("accept", citizens=args.citizens) as platform:
        out = asyncio.run(phases(platform, args, wanted))
    postgres, final = out.pop("postgres"), out.pop("statuses")
    for name in out:
        out[name]["postgres"] = postgres
    if "accept" in out:
        out["accept"]["statuses_at_end"] = final
    return {name: figures for name, figures in out.items() if name in wanted}


if __name__ == "__main__":
    import run as bench_run

    sys.exit(bench_run.main(["--only", "accept,pipeline", *sys.argv[1:]]))
