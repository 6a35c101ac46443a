"""The limits every civio figure is compared with, measured in the same run.

- **hello-world**: ``bench/hello.py`` (one GET route returning a small JSON object) served
  through ``civio.core.serving.serve_app``, the server configuration ``civio serve`` uses,
  loaded by wrk exactly as the accept phase is (same connections, threads, timeout, Lua).
- **PostgreSQL**: ``pgbench`` (from the pgserver wheel, or the machine's PostgreSQL) against
  a fresh embedded cluster with default settings: single-row commits/s of a ~1 KB row with
  16 clients, and rows/s when each transaction inserts 100 such rows.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from common import (
    ROOT,
    Cpu,
    CpuMeter,
    Generator,
    Load,
    Target,
    embedded_cluster,
    free_port,
    log,
    percentile,
    scratch_dir,
    start_process,
    stop_process,
    wait_http_ready,
)

from civio.core.serving import SERVER_OPTIONS

ROW_TABLE = """
CREATE TABLE bench_rows (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    payload text NOT NULL
)
"""
# 32 x 32 hex digits: a 1,024-byte payload that does not compress.
SCRIPTS = {
    "single_row": ("INSERT INTO bench_rows (payload) VALUES (repeat(md5(random()::text), 32));\n"),
    "batch_100": (
        "INSERT INTO bench_rows (payload)"
        " SELECT repeat(md5(random()::text), 32) FROM generate_series(1, 100);\n"
    ),
}


def server_configuration() -> dict[str, Any]:
    """What ``serve_app`` runs: uvicorn's "auto" picks uvloop and httptools when installed."""
    return {
        "function": "civio.core.serving.serve_app",
        "uvicorn": importlib.metadata.version("uvicorn"),
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "workers": 1,
        "options": SERVER_OPTIONS,
    }


async def _hello_load(
    base: str, work_dir: Path, server_pid: int, args: argparse.Namespace
) -> tuple[Load, Cpu]:
    generator = Generator(base, "", work_dir)
    meter = CpuMeter(server_pid, None)
    await generator.closed_loop(Target("GET", ["/hello"], 200), args.concurrency, 1)  # warm-up
    with meter.measure() as cpu:
        load = await generator.closed_loop(
            Target("GET", ["/hello"], 200), args.concurrency, args.limit_duration
        )
    return load, cpu


def hello_world(args: argparse.Namespace) -> dict[str, Any]:
    work_dir = scratch_dir("hello")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "bench" / "hello.py"), "--port", str(port)]
    server = start_process(command, work_dir / "hello.log")
    try:
        wait_http_ready(f"{base}/hello", server)
        log(
            f"limits: hello-world GET /hello, {args.concurrency} connections, "
            f"{args.limit_duration:g} s"
        )
        load, cpu = asyncio.run(_hello_load(base, work_dir, server.pid, args))
    finally:
        stop_process(server, "hello-world server")
        shutil.rmtree(work_dir, ignore_errors=True)
    log(f"limits: hello-world {load.rate:,.0f} req/s, p99 {load.p99_ms:,.1f} ms")
    return {
        "endpoint": "GET /hello (bench/hello.py)",
        "server": server_configuration(),
        **load.summary(),
        "cpu_cores": asdict(cpu),
        "server_cpu_ms_per_request": round(cpu.server / load.rate * 1000, 3) if load.rate else 0,
    }


def pgbench_binary() -> str:
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
    if bundled.exists():
        return str(bundled)
    system = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)
    found = system[0] if system else shutil.which("pgbench")
    if not found:
        raise RuntimeError("pgbench not found (pgserver wheel or PostgreSQL binaries)")
    return found


def _pgbench(
    binary: str, url: str, work_dir: Path, name: str, clients: int, seconds: float
) -> dict[str, Any]:
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
    script = work_dir / f"{name}.sql"
    script.write_text(SCRIPTS[name])
    threads = max(1, min(clients, 2))
    command = [
        binary,
        "-h",
        host,
        "-U",
        parts.username or "postgres",
        "--no-vacuum",
        "--protocol=prepared",
        f"--client={clients}",
        f"--jobs={threads}",
        f"--time={max(1, round(seconds))}",
        "--log",
        f"--log-prefix={work_dir / name}",
        f"--file={script}",
        (parts.path or "/postgres").lstrip("/") or "postgres",
    ]
    done = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if tps is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{done.stdout}")
    latencies = []
    for log_file in work_dir.glob(f"{name}.*"):
        if log_file.suffix == ".sql":
            continue
        for line in log_file.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000)
    latencies.sort()
    return {
        "clients": clients,
        "threads": threads,
        "seconds": max(1, round(seconds)),
        "transactions_per_s": round(float(tps.group(1)), 1),
        "failed": int(failed.group(1)) if failed else 0,
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "transactions": len(latencies),
        "script": SCRIPTS[name].strip(),
    }


def postgres(args: argparse.Namespace) -> dict[str, Any]:
    binary = pgbench_binary()
    with embedded_cluster("pgbench") as (data_dir, url):

        async def prepare() -> tuple[str, dict[str, str]]:
            connection = await asyncpg.connect(url)
            try:
                await connection.execute(ROW_TABLE)
                version: str = await connection.fetchval("SHOW server_version")
                names = ("shared_buffers", "synchronous_commit", "fsync", "wal_level")
                settings = {n: await connection.fetchval(f"SHOW {n}") for n in names}
                return version, settings
            finally:
                await connection.close()

        version, settings = asyncio.run(prepare())
        result: dict[str, Any] = {
            "pgbench": binary,
            "postgres": version,
            "settings": settings,
            "row_bytes": 1024,
        }
        for name in SCRIPTS:
            log(
                f"limits: pgbench {name}, {args.pgbench_clients} clients, "
                f"{args.pgbench_duration:g} s"
            )
            result[name] = _pgbench(
                binary, url, data_dir, name, args.pgbench_clients, args.pgbench_duration
            )
    single, batch = result["single_row"], result["batch_100"]
    single["commits_per_s"] = single["transactions_per_s"]
    batch["rows_per_s"] = round(batch["transactions_per_s"] * 100)
    log(
        f"limits: PostgreSQL {single['commits_per_s']:,.0f} single-row commits/s, "
        f"{batch['rows_per_s']:,} rows/s in 100-row batches"
    )
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    return {"hello_world": hello_world(args), "postgres": postgres(args)}
