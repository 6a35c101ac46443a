"""``make bench``: every performance figure of civio in one run, against its limits.

Sections, in order (each on its own throw-away data dir under /tmp):

    limits         hello-world req/s on civio's server configuration; pgbench commits/s
    accept         POST /api/v1/messages at 64 connections (wrk): msg/s, p50/p99, errors
    pipeline       PROCESSED/s while accepting, backlog, accept→PROCESSED at half load
    notifications  emails/s and pushes/s to local receivers
    inbox          page and search latency, 10,000 messages among 1,000,000
    volume         wall time to accept and process 1,000,000 messages (RSS of civio serve)
    memory         peak RSS of the API and of a separate worker

It writes ``bench/results/latest.json`` (merged: sections not run keep their last figures),
the table between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in
``docs/performance.md`` and the chart ``docs/performance.png``. Progress goes to stderr,
the summary to stdout.

    .venv/bin/python bench/run.py                      # everything, full size
    .venv/bin/python bench/run.py --quick              # a smoke run of every section
    .venv/bin/python bench/run.py --only limits,accept --skip ...
    .venv/bin/python bench/run.py --render-only        # table and chart from latest.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import report
from common import RESULTS_DIR, ROOT, git_commit, log, machine_info

SECTIONS = report.SECTION_ORDER
DOC = ROOT / "docs" / "performance.md"
CHART = ROOT / "docs" / "performance.png"

# name: (full size, --quick)
SIZES: dict[str, tuple[float, float]] = {
    "concurrency": (64, 64),
    "limit_duration": (10, 3),
    "pgbench_duration": (15, 3),
    "pgbench_clients": (16, 16),
    "healthz_duration": (10, 3),
    "warmup": (5, 2),
    "duration": (60, 8),
    "half_duration": (30, 5),
    "citizens": (20, 20),
    "drain_timeout": (900, 300),
    "notification_messages": (2000, 200),
    "notification_citizens": (50, 10),
    "receiver_limit_duration": (5, 2),
    "inbox_total": (1_000_000, 100_000),
    "inbox_size": (10_000, 1_000),
    "inbox_requests": (200, 50),
    "volume_messages": (1_000_000, 10_000),
    "volume_citizens": (1_000, 1_000),
    "memory_messages": (100_000, 2_000),
}
HELP = {
    "concurrency": "connections of every closed-loop load",
    "limit_duration": "hello-world load, s",
    "pgbench_duration": "each pgbench run, s",
    "pgbench_clients": "pgbench clients",
    "healthz_duration": "civio GET /healthz load, s (0: skip)",
    "warmup": "accept warm-up, s (0: skip)",
    "duration": "full accept load, s: the accept and pipeline window",
    "half_duration": "paced half load, s",
    "citizens": "recipients in accept/pipeline",
    "drain_timeout": "longest wait for the backlog to drain, s",
    "notification_messages": "messages whose email and push are delivered",
    "notification_citizens": "citizens with email and push",
    "receiver_limit_duration": "SMTP and push receivers alone, s each",
    "inbox_total": "messages in the database for the inbox section",
    "inbox_size": "messages of the measured citizen (at least 1,000)",
    "inbox_requests": "timed requests per inbox scenario",
    "volume_messages": "messages of the volume section",
    "volume_citizens": "recipients in volume and memory",
    "memory_messages": "messages of the memory section (separate worker)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--skip", help="comma-separated sections not to run")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--render-only", action="store_true", help="no measuring: table and chart from --output"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="combined results, merged (bench/results/latest.json)",
    )
    parser.add_argument(
        "--doc", type=Path, default=DOC, help="Markdown with the markers (docs/performance.md)"
    )
    parser.add_argument("--chart", type=Path, default=CHART, help="(docs/performance.png)")
    for name, (full, quick) in SIZES.items():
        kind = float if isinstance(full, float) or "duration" in name else int
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"{HELP[name]} (full {full:,}, quick {quick:,})",
        )
    args = parser.parse_args(argv)
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)

    def names(value: str | None) -> set[str]:
        chosen = {n.strip() for n in (value or "").split(",") if n.strip()}
        unknown = chosen - set(SECTIONS)
        if unknown:
            parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; know {SECTIONS}")
        return chosen

    only, skip = names(args.only), names(args.skip)
    args.sections = [s for s in SECTIONS if (not only or s in only) and s not in skip]
    if args.inbox_size < 1000 or args.inbox_size >= args.inbox_total:
        parser.error("need 1,000 <= --inbox-size < --inbox-total")
    return args


# --------------------------------------------------------------------------- sections


def inbox_section(args: argparse.Namespace) -> dict[str, Any]:
    import inbox

    options = inbox.parse_args(
        [
            "--messages-total",
            str(args.inbox_total),
            "--inbox-size",
            str(args.inbox_size),
            "--requests",
            str(args.inbox_requests),
            *(
                ["--rounds", "10", "--warmup", "5", "--pending-messages", "50"]
                if args.quick
                else []
            ),
        ]
    )
    result, _ = inbox.measure(options)
    return without_plan_texts(result)


def without_plan_texts(value: Any) -> Any:
    """The inbox's result without EXPLAIN's text output (kept in bench/results/inbox.json)."""
    if isinstance(value, dict):
        return {k: without_plan_texts(v) for k, v in value.items() if k != "text"}
    if isinstance(value, list):
        return [without_plan_texts(v) for v in value]
    return value


def notifications_section(args: argparse.Namespace) -> dict[str, Any]:
    import notifications

    options = notifications.parse_args(
        [
            "--messages",
            str(args.notification_messages),
            "--citizens",
            str(args.notification_citizens),
            "--limit-duration",
            str(args.receiver_limit_duration),
        ]
    )
    return notifications.measure(options)


def section_config(name: str, args: argparse.Namespace) -> dict[str, Any]:
    keys = {
        "limits": ("concurrency", "limit_duration", "pgbench_duration", "pgbench_clients"),
        "accept": ("concurrency", "duration", "warmup", "healthz_duration", "citizens"),
        "pipeline": ("concurrency", "duration", "half_duration", "citizens"),
        "notifications": (
            "notification_messages",
            "notification_citizens",
            "receiver_limit_duration",
        ),
        "inbox": ("inbox_total", "inbox_size", "inbox_requests"),
        "volume": ("concurrency", "volume_messages", "volume_citizens"),
        "memory": ("concurrency", "memory_messages", "volume_citizens"),
    }[name]
    return {key: getattr(args, key) for key in keys}


def measure(args: argparse.Namespace, run: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the chosen sections; returns (sections, failures), each keyed by section."""
    import accept
    import limits
    import volume

    done: dict[str, Any] = {}
    failures: dict[str, Any] = {}
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "limits": lambda: limits.run(args),
        "notifications": lambda: notifications_section(args),
        "inbox": lambda: inbox_section(args),
        "volume": lambda: volume.run_volume(args),
        "memory": lambda: volume.run_memory(args),
    }
    for name in args.sections:
        if name in done or name in failures:
            continue  # pipeline, measured with accept
        started = time.perf_counter()
        together = [s for s in ("accept", "pipeline") if s in args.sections]
        group = together if name in ("accept", "pipeline") else [name]
        log(f"=== {' + '.join(group)}")
        try:
            # Sections print their own progress: keep stdout for the summary.
            with contextlib.redirect_stdout(sys.stderr):
                if name in ("accept", "pipeline"):
                    results = accept.run(args, set(group))
                else:
                    results = {name: runners[name]()}
        except Exception:
            error = traceback.format_exc()
            log(f"{' + '.join(group)} FAILED:\n{error}")
            for each in group:
                failures[each] = {"run": run, "error": error[-4000:]}
            continue
        seconds = round(time.perf_counter() - started, 1)
        log(f"=== {' + '.join(group)} done in {seconds:,.0f} s")
        for each in group:
            meta = {**run, "seconds": seconds, "config": section_config(each, args)}
            done[each] = {"run": meta, **results[each]}
    return done, failures


# --------------------------------------------------------------------------- main


def load(path: Path) -> dict[str, Any]:
    """The existing combined results; an older format (bench/accept.py's) is not merged."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("sections"), dict):
            return data
    return {"sections": {}}


def wrk_version() -> str:
    wrk = shutil.which("wrk")
    if not wrk:
        return "no wrk"
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (output.stdout or output.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "wrk"


def render(data: dict[str, Any], args: argparse.Namespace) -> None:
    data["targets"] = [c.as_dict() for c in report.checks(data["sections"])]
    data["ratios"] = report.ratios(data["sections"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output}")
    if args.doc.exists():
        chart_name = os.path.relpath(args.chart.resolve(), args.doc.resolve().parent)
        block = report.markdown(data, chart_name)
        if report.update_doc(args.doc, block):
            log(f"updated the table in {args.doc}")
        else:
            log(f"no {report.BEGIN} … {report.END} markers in {args.doc}: table not written")
    try:
        report.chart(data, args.chart)
        log(f"drew {args.chart}")
    except ImportError:
        log("matplotlib is missing (pip install -e '.[bench]'): no chart")
    print(report.text_summary(data))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load(args.output)
    if args.render_only:
        render(data, args)
        return 0
    if not args.sections:
        log("no section selected")
        return 2
    started = datetime.now(UTC)
    busy = psutil.cpu_percent(interval=2.0)
    if busy > 10:
        log(f"warning: the machine is already {busy:.0f}% busy; figures will be noisy")
    run = {
        "id": started.isoformat(timespec="seconds"),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "quick": args.quick,
        "busy_percent_before": busy,
    }
    log(
        f"sections: {', '.join(args.sections)}"
        + (" (quick: small sizes, not the reference figures)" if args.quick else "")
    )
    done, failures = measure(args, run)
    data["machine"] = {**machine_info(), "wrk": wrk_version()}
    data["sections"].update(done)
    data.setdefault("failures", {})
    for name in done:
        data["failures"].pop(name, None)
    data["failures"].update(failures)
    if not data["failures"]:
        del data["failures"]
    data["updated"] = run["date"]
    render(data, args)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
