"""The volume and memory sections: N messages through the HTTP API at full speed.

**volume**: a fresh platform (``civio serve``, API and in-process worker, as ``make run``),
``--volume-citizens`` recipients; wrk sends ``--volume-messages`` messages (default
1,000,000) from 64 connections with a Lua script cycling the recipients (each wrk thread
stops after its share), then the benchmark waits until no message is ACCEPTED. It reports
the wall time until the last answer and until the last message left ACCEPTED, the rates,
and (below 1,000,000) the linear projection to 1,000,000. The resident set size of
``civio serve`` is sampled every 0.5 s throughout.

**memory**: the same flood (``--memory-messages``) on a platform where the API runs alone
(``civio serve --no-worker``) and one ``civio worker`` process does the processing, so
the peak RSS of each is measured separately.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg
from common import (
    Backlog,
    Generator,
    Platform,
    RssSampler,
    log,
    read_wrk_progress,
    statuses,
    wait_until_processed,
    wrk_threads,
)

MILLION = 1_000_000


async def flood(
    platform: Platform, messages: int, connections: int, rss: RssSampler, label: str
) -> dict[str, Any]:
    """``messages`` messages from wrk at full speed; then until none is ACCEPTED."""
    await platform.probe()
    connection = await asyncpg.connect(platform.database_url)
    await connection.execute("SET plan_cache_mode = force_custom_plan")
    backlog = Backlog(connection, platform.service_id)
    await wait_until_processed(backlog, connection, 60)  # the probe
    generator = Generator(platform.base, platform.key, platform.data_dir)
    progress = platform.data_dir / "wrk-progress-"
    # Responses per wrk thread. A thread stops with its other connections' requests still in
    # flight (the server accepts them all), so aim that many below the total.
    threads = wrk_threads(connections)
    quota = max(1, -(-(messages - connections + threads) // threads))
    try:
        wrk = await generator.start_wrk(
            platform.message_target(), connections, 86_400, quota=quota, progress=progress
        )
        quota_total = quota * wrk.threads
        started = time.perf_counter()
        last_log = started
        backlog_max = 0
        backlog_polled = 0.0
        count = 0
        while True:
            await asyncio.sleep(0.2)
            received, _ = read_wrk_progress(progress, wrk.threads)
            now = time.perf_counter()
            if wrk.process.returncode is not None:
                break
            if received >= quota_total:
                break
            # The backlog query costs about the backlog: poll it at most every few seconds.
            if now - backlog_polled > max(5.0, 50 * backlog.query_seconds):
                count = await backlog.count()
                backlog_max = max(backlog_max, count)
                backlog_polled = time.perf_counter()
            if now - last_log >= 10:
                last_log = now
                rate = received / (now - started)
                log(
                    f"{label}: {received:,}/{quota_total:,} answered ({rate:,.0f}/s), "
                    f"backlog {count:,} ACCEPTED, RSS "
                    + ", ".join(f"{k} {v:,.0f} MB" for k, v in rss.last_mb().items())
                )
        accept_seconds = time.perf_counter() - started
        wrk.stop()
        load = await wrk.result()
        at_accept_end = await backlog.count()
        backlog_max = max(backlog_max, at_accept_end)
        log(
            f"{label}: {load.responses:,} answered in {accept_seconds:,.1f} s "
            f"({load.responses / accept_seconds:,.0f}/s); backlog {at_accept_end:,}; waiting "
            "until none is ACCEPTED"
        )
        drain_started = time.perf_counter()
        drain_last_log = drain_started

        async def drain_progress(remaining: int) -> None:
            nonlocal drain_last_log
            now = time.perf_counter()
            if now - drain_last_log >= 10:
                drain_last_log = now
                rate = (at_accept_end - remaining) / (now - drain_started)
                log(f"{label}: backlog {remaining:,} ACCEPTED (draining {rate:,.0f}/s)")

        await wait_until_processed(backlog, connection, 24 * 3600, drain_progress)
        total_seconds = time.perf_counter() - started
        final = await statuses(connection)
    finally:
        await connection.close()
    created = sum(final.values()) - 1  # the probe
    processed = final.get("PROCESSED", 0) - 1
    errors = load.unexpected + load.errors
    result: dict[str, Any] = {
        "messages_requested": messages,
        "messages": created,
        "citizens": len(platform.codes),
        "connections": connections,
        "generator": load.generator,
        "answered": load.responses,
        "accepted_201": load.expected,
        "errors_total": errors,
        "http_p50_ms": round(load.p50_ms, 1),
        "http_p99_ms": round(load.p99_ms, 1),
        "accept_seconds": round(accept_seconds, 1),
        "accept_per_s": round(load.expected / accept_seconds, 1),
        "backlog_at_accept_end": at_accept_end,
        "backlog_max": backlog_max,
        "all_processed_seconds": round(total_seconds, 1),
        "drain_after_accept_seconds": round(total_seconds - accept_seconds, 1),
        "end_to_end_per_s": round(created / total_seconds, 1),
        "statuses": final,
        "processed": processed,
    }
    if created and created < MILLION:
        result["projected_1m_seconds"] = round(total_seconds * MILLION / created, 1)
        result["projected_1m_accept_seconds"] = round(accept_seconds * MILLION / created, 1)
    log(
        f"{label}: {created:,} messages accepted in {accept_seconds:,.1f} s and processed "
        f"in {total_seconds:,.1f} s ({result['end_to_end_per_s']:,.0f}/s end to end)"
    )
    return result


def run_volume(args: argparse.Namespace) -> dict[str, Any]:
    with (
        Platform("volume", citizens=args.volume_citizens) as platform,
        RssSampler({"serve": platform.server.pid}) as rss,
    ):
        result = asyncio.run(flood(platform, args.volume_messages, args.concurrency, rss, "volume"))
        rss.sample()
    result["worker"] = "in-process (civio serve)"
    result["rss_peak_mb"] = rss.peak_mb()
    result["rss_at_end_mb"] = rss.last_mb()
    return result


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    with Platform("memory", citizens=args.volume_citizens, separate_worker=True) as platform:
        assert platform.worker is not None
        roots = {"api": platform.server.pid, "worker": platform.worker.pid}
        with RssSampler(roots) as rss:
            rss.sample()
            at_start = rss.last_mb()
            flooded = asyncio.run(
                flood(platform, args.memory_messages, args.concurrency, rss, "memory")
            )
            rss.sample()
    peaks = rss.peak_mb()
    log(f"memory: peak RSS API {peaks['api']:,.0f} MB, worker {peaks['worker']:,.0f} MB")
    return {
        "layout": "civio serve --no-worker + one civio worker",
        "messages": flooded["messages"],
        "citizens": flooded["citizens"],
        "rss_peak_mb": peaks,
        "rss_at_start_mb": at_start,
        "rss_at_end_mb": rss.last_mb(),
        "samples": rss.samples,
        "flood": {
            key: flooded[key]
            for key in (
                "accept_per_s",
                "all_processed_seconds",
                "end_to_end_per_s",
                "errors_total",
                "statuses",
            )
        },
    }
