"""Accept rate and accept→PROCESSED latency of the embedded civio platform.

Run with ``.venv/bin/python bench/accept.py`` (``make bench``). It starts ``civio serve``
on a throw-away data dir, provisions a service and a few citizens with the CLI, then:

1. limit   — ``GET /healthz`` at full concurrency: what this machine's HTTP stack can do;
2. accept  — ``POST /api/v1/messages/{fc}`` at full concurrency for ``--duration`` s;
3. drain   — waits until no message is ACCEPTED, then reads accept→PROCESSED latency
             (``status_at - created_at``) from the ``messages`` table;
4. half    — an open-loop paced run at half the measured accept rate, and its latencies.

The closed-loop load generator is ``wrk`` (with a Lua script) when it is on PATH, else a
small asyncio HTTP/1.1 client in this process, which also drives the paced half-load run
(wrk cannot pace). Results go to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from civio.core.embedded import embedded_database_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
CIVIO = Path(sys.executable).parent / "civio"
JSON = {"Content-Type": "application/json"}
SERVICE_CREATE = shlex.split(
    "service create --name bench --organization-name Bench --organization-fiscal-code "
    "12345678901 --group ApiMessageWrite --group ApiMessageRead --group ApiNoRateLimit --json"
)
MESSAGE_BODY = json.dumps(
    {
        "content": {
            "subject": "Benchmark: your certificate is ready",
            "markdown": (
                "Your residence certificate is ready for pickup at the registry office. "
                "Bring an identity document and this message. Opening hours: Monday to "
                "Friday, 9:00 to 12:30."
            ),
        }
    }
)


# --------------------------------------------------------------------------- results


@dataclass
class Load:
    """What one load-generator run saw on the wire."""

    generator: str
    seconds: float
    responses: int  # responses received, any status
    expected: int  # responses with the expected status (201, or 200 for /healthz)
    errors: int  # socket errors and timeouts: no response at all
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def unexpected(self) -> int:
        return self.responses - self.expected

    @property
    def rate(self) -> float:
        return self.expected / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        rounded = {k: round(v, 1) if isinstance(v, float) else v for k, v in asdict(self).items()}
        return {
            **rounded,
            "per_second": round(self.rate, 1),
            "unexpected_status": self.unexpected,
        }


@dataclass
class Pipeline:
    """What the ``messages`` table says about the messages created in a time window."""

    statuses: dict[str, int]
    processed_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    drain_seconds: float  # from the end of the load to no ACCEPTED message left
    backlog_at_end: int  # ACCEPTED messages right when the load ended
    backlog_max: int  # largest ACCEPTED count sampled (every second) during the load


@dataclass
class Cpu:
    """CPU used during a phase, in cores (CPU seconds / wall seconds)."""

    server: float = 0.0  # the civio serve process: API and in-process worker
    postgres: float = 0.0  # the embedded cluster (postmaster and backends)
    generator: float = 0.0  # wrk and/or this process (Python generator, polling)
    other: float = 0.0  # anything else running on the machine (noise)
    idle: float = 0.0


# --------------------------------------------------------------------------- helpers


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fiscal_codes(count: int) -> list[str]:
    """Valid, distinct fiscal codes (never the sandbox one)."""
    return [f"BNCCIT{i % 100:02d}A01H{i:03d}Z" for i in range(count)]


def civio_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "CIVIO_DATA_DIR": str(data_dir), "CIVIO_LOG_LEVEL": "WARNING"}


def civio_cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(CIVIO), *args], env=civio_env(data_dir), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"civio {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def create_citizens(data_dir: Path, codes: list[str], parallel: int = 4) -> None:
    """``civio citizen create`` for each code, a few processes at a time (~1 s each)."""
    for start in range(0, len(codes), parallel):
        batch = [
            subprocess.Popen(
                [str(CIVIO), "citizen", "create", code],
                env=civio_env(data_dir),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for code in codes[start : start + parallel]
        ]
        for process in batch:
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"civio citizen create failed:\n{stderr}")


def postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "civio_commit": commit,
    }


# --------------------------------------------------------------------------- CPU meter


class CpuMeter:
    """CPU seconds of the server process, the PostgreSQL cluster and the load generator."""

    def __init__(self, server_pid: int, postmaster: int | None) -> None:
        self._server = psutil.Process(server_pid)
        self._postmaster = psutil.Process(postmaster) if postmaster else None

    @staticmethod
    def _seconds(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    def _postgres(self) -> dict[int, float]:
        if self._postmaster is None:
            return {}
        seconds: dict[int, float] = {}
        with contextlib.suppress(psutil.Error):
            for process in [self._postmaster, *self._postmaster.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    seconds[process.pid] = self._seconds(process)
        return seconds

    @staticmethod
    def _generator() -> float:
        # This process (Python generator, DB polling) plus waited-for children (wrk).
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    @staticmethod
    def _machine_idle() -> float:
        times = psutil.cpu_times()
        return float(times.idle + getattr(times, "iowait", 0.0))

    @contextlib.contextmanager
    def measure(self) -> Iterator[Cpu]:
        """Yields a Cpu filled in when the block exits."""
        result = Cpu()
        wall0, idle0 = time.perf_counter(), self._machine_idle()
        server0, postgres0, generator0 = (
            self._seconds(self._server),
            self._postgres(),
            self._generator(),
        )
        yield result
        wall = time.perf_counter() - wall0
        postgres1 = self._postgres()
        # A backend that started during the phase counts from zero; one that exited is lost.
        postgres = sum(t - postgres0.get(pid, 0.0) for pid, t in postgres1.items())
        result.server = round((self._seconds(self._server) - server0) / wall, 2)
        result.postgres = round(postgres / wall, 2)
        result.generator = round((self._generator() - generator0) / wall, 2)
        result.idle = round((self._machine_idle() - idle0) / wall, 2)
        busy = (os.cpu_count() or 1) - result.idle
        result.other = round(max(0.0, busy - result.server - result.postgres - result.generator), 2)


# --------------------------------------------------------------------------- generators

WRK_SCRIPT = """\
-- generated by bench/accept.py
local paths = {%(paths)s}
local expected = %(expected)d
wrk.method = "%(method)s"
wrk.headers["Ocp-Apim-Subscription-Key"] = "%(key)s"
%(body)s
local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  prepared = {}
  for i, path in ipairs(paths) do prepared[i] = wrk.format(nil, path) end
  counter = offset
  unexpected = 0
end

function request()
  counter = counter + 1
  return prepared[counter %% #prepared + 1]
end

function response(status, headers, body)
  if status ~= expected then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
  local unexpected_total = 0
  for _, thread in ipairs(threads) do
    unexpected_total = unexpected_total + thread:get("unexpected")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"responses": %%d, "duration_us": %%d, "unexpected": %%d, "errors": %%d, ' ..
    '"p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, unexpected_total,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Target:
    """One kind of request: method, paths (cycled), body and the status that means success."""

    method: str
    paths: list[str]
    expected: int
    body: str | None = None


# What a failed exchange raises: no response to count (socket error, timeout, garbage).
REQUEST_ERRORS = (OSError, EOFError, TimeoutError, asyncio.LimitOverrunError, ValueError)


@dataclass
class Tally:
    """Latencies and outcomes of Python-generated requests."""

    latencies: list[float] = field(default_factory=list)
    expected: int = 0
    errors: int = 0

    async def run(self, request: Coroutine[Any, Any, int], expected: int, since: float) -> None:
        try:
            status = await request
        except REQUEST_ERRORS:
            self.errors += 1
            return
        self.latencies.append(time.perf_counter() - since)
        self.expected += status == expected

    def load(self, name: str, seconds: float) -> Load:
        ordered = sorted(self.latencies)
        return Load(
            generator=name,
            seconds=seconds,
            responses=len(ordered),
            expected=self.expected,
            errors=self.errors,
            p50_ms=percentile(ordered, 0.50) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            max_ms=(ordered[-1] if ordered else 0.0) * 1000,
        )


class HttpPool:
    """A minimal HTTP/1.1 keep-alive client: about a quarter of httpx's CPU per request.

    Enough for uvicorn's answers (Content-Length bodies); at most ``connections`` in flight.
    """

    def __init__(self, base: str, key: str, connections: int) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self._host, self._port = host, int(port)
        self._headers = (
            f"Host: {host}:{port}\r\nOcp-Apim-Subscription-Key: {key}\r\n"
            "Content-Type: application/json\r\n"
        )
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        """The response status; raises OSError/EOFError/TimeoutError when there is none."""
        async with self._slots, asyncio.timeout(30):
            reader, writer = await self._connection()
            try:
                status, keep_alive = await self._exchange(reader, writer, method, path, body)
            except BaseException:
                writer.close()
                raise
            if keep_alive:
                self._idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # Most recently used first; drop what uvicorn may have closed (keep-alive is 5 s).
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < 4.0 and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self._host, self._port)

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        body: bytes,
    ) -> tuple[int, bool]:
        head = f"{method} {path} HTTP/1.1\r\n{self._headers}Content-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        response = await reader.readuntil(b"\r\n\r\n")
        status, length, keep_alive = int(response[9:12]), 0, True
        for line in response.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        await reader.readexactly(length)
        return status, keep_alive

    def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


class Generator:
    """Closed-loop load (wrk, or Python) at fixed concurrency; open-loop paced load (Python)."""

    def __init__(self, base: str, key: str, work_dir: Path, use_wrk: bool) -> None:
        self.base, self.key, self.work_dir = base, key, work_dir
        self.wrk = shutil.which("wrk") if use_wrk else None
        self.name = "wrk" if self.wrk else "python-asyncio"

    async def closed_loop(self, target: Target, connections: int, seconds: float) -> Load:
        if self.wrk:
            return await self._wrk(target, connections, seconds)
        return await self._python_closed(target, connections, seconds)

    async def _wrk(self, target: Target, connections: int, seconds: float) -> Load:
        assert self.wrk is not None
        body = ""
        if target.body is not None:
            body = (
                'wrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = [==[{target.body}]==]\n"
            )
        script = self.work_dir / "load.lua"
        script.write_text(
            WRK_SCRIPT
            % {
                "paths": ", ".join(f'"{p}"' for p in target.paths),
                "expected": target.expected,
                "method": target.method,
                "key": self.key,
                "body": body,
            }
        )
        threads = max(1, min(os.cpu_count() or 1, connections))
        process = await asyncio.create_subprocess_exec(
            self.wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            self.base,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        line = next((x for x in stdout.decode().splitlines() if x.startswith("BENCH_JSON ")), None)
        if process.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({process.returncode}):\n{stdout!r}\n{stderr!r}")
        data = json.loads(line.removeprefix("BENCH_JSON "))
        return Load(
            generator=f"wrk -t{threads} -c{connections}",
            seconds=data["duration_us"] / 1e6,
            responses=data["responses"],
            expected=data["responses"] - data["unexpected"],
            errors=data["errors"],
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
        )

    async def _python_closed(self, target: Target, connections: int, seconds: float) -> Load:
        tally = Tally()
        body = (target.body or "").encode()
        pool = HttpPool(self.base, self.key, connections)

        async def loop(index: int, deadline: float) -> None:
            while (sent := time.perf_counter()) < deadline:
                path = target.paths[index % len(target.paths)]
                index += connections
                await tally.run(pool.request(target.method, path, body), target.expected, sent)

        start = time.perf_counter()
        await asyncio.gather(*(loop(i, start + seconds) for i in range(connections)))
        elapsed = time.perf_counter() - start
        pool.close()
        return tally.load(f"python-asyncio c={connections}", elapsed)

    async def paced(self, target: Target, rate: float, seconds: float, connections: int) -> Load:
        """Open loop: request i is due at start + i/rate whatever the server does.

        Latency counts from the due time, so a stall (or a late generator) shows in full.
        """
        tally = Tally()
        body = (target.body or "").encode()
        pool = HttpPool(self.base, self.key, connections)
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter() + 0.05
        for index in range(int(rate * seconds)):
            due = start + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            path = target.paths[index % len(target.paths)]
            request = pool.request(target.method, path, body)
            tasks.append(asyncio.create_task(tally.run(request, target.expected, due)))
        await asyncio.gather(*tasks)
        pool.close()
        return tally.load(f"python-asyncio paced {rate:.0f}/s", len(tasks) / rate)


# --------------------------------------------------------------------------- database

WINDOW_SQL = """
SELECT status,
       count(*) AS n,
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
           ORDER BY extract(epoch FROM status_at - created_at)::float8) AS latency,
       max(extract(epoch FROM status_at - created_at)::float8) AS worst,
       min(created_at) AS first_created,
       max(status_at) AS last_status
FROM messages
WHERE created_at >= $1 AND created_at < $2
GROUP BY status
"""


async def backlog(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval(
        "SELECT count(*) FROM messages WHERE status = 'ACCEPTED'"
    )
    return count


async def wait_for_drain(connection: asyncpg.Connection, timeout: float) -> float:
    """Seconds until no message is ACCEPTED (or ``timeout`` elapsed)."""
    start = time.perf_counter()
    while await backlog(connection) and time.perf_counter() - start < timeout:
        await asyncio.sleep(0.25)
    return time.perf_counter() - start


async def window_stats(
    connection: asyncpg.Connection, since: datetime, until: datetime
) -> tuple[dict[str, int], float, tuple[float, float, float] | None]:
    """Counts per status, PROCESSED/s and accept→PROCESSED (p50, p99, max) in seconds."""
    rows = await connection.fetch(WINDOW_SQL, since, until)
    statuses = {row["status"]: row["n"] for row in rows}
    processed = next((row for row in rows if row["status"] == "PROCESSED"), None)
    if processed is None:
        return statuses, 0.0, None
    span = (processed["last_status"] - processed["first_created"]).total_seconds()
    rate = processed["n"] / span if span > 0 else 0.0
    p50, p99 = processed["latency"]
    return statuses, rate, (p50, p99, processed["worst"])


# --------------------------------------------------------------------------- the run


@dataclass
class Setup:
    base: str
    key: str
    codes: list[str]
    database_url: str
    data_dir: Path
    server_pid: int


async def loaded_phase(
    connection: asyncpg.Connection,
    meter: CpuMeter,
    load: Coroutine[Any, Any, Load],
    drain_timeout: float,
) -> tuple[Load, Pipeline, Cpu]:
    """Run ``load`` while sampling the backlog; then drain and read the table."""
    since = datetime.now(UTC)
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(await backlog(connection))
            await asyncio.sleep(1.0)

    with meter.measure() as cpu:
        sampler = asyncio.create_task(sample())
        try:
            result: Load = await load
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    at_end = await backlog(connection)
    until = datetime.now(UTC)
    drain = await wait_for_drain(connection, drain_timeout)
    statuses, processed_rate, latency = await window_stats(connection, since, until)
    pipeline = Pipeline(
        statuses=statuses,
        processed_per_s=round(processed_rate, 1),
        p50_ms=round(latency[0] * 1000, 1) if latency else None,
        p99_ms=round(latency[1] * 1000, 1) if latency else None,
        max_ms=round(latency[2] * 1000, 1) if latency else None,
        drain_seconds=round(drain, 1),
        backlog_at_end=at_end,
        backlog_max=max([at_end, *samples]),
    )
    return result, pipeline, cpu


async def run_phases(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    generator = Generator(setup.base, setup.key, setup.data_dir, use_wrk=args.generator != "python")
    if args.generator == "wrk" and generator.wrk is None:
        raise SystemExit("--generator wrk: wrk is not on PATH (apt-get install -y wrk)")
    paths = [f"/api/v1/messages/{code}" for code in setup.codes]
    accept = Target("POST", paths, 201, MESSAGE_BODY)
    health = Target("GET", ["/healthz"], 200)
    meter = CpuMeter(setup.server_pid, postmaster_pid(setup.data_dir))
    connection = await asyncpg.connect(setup.database_url)
    try:
        async with httpx.AsyncClient(base_url=setup.base) as client:  # fail early, clearly
            probe = await client.post(
                paths[0],
                content=MESSAGE_BODY,
                headers={"Ocp-Apim-Subscription-Key": setup.key, **JSON},
            )
            if probe.status_code != 201:
                raise RuntimeError(f"probe POST got {probe.status_code}: {probe.text}")
        print(f"generator: {generator.name}; limit phase ({args.limit_duration:g} s)")
        with meter.measure() as limit_cpu:
            limit = await generator.closed_loop(health, args.concurrency, args.limit_duration)
        if args.warmup > 0:
            print(f"warm-up ({args.warmup:g} s) and drain")
            await generator.closed_loop(accept, args.concurrency, args.warmup)
            await wait_for_drain(connection, args.drain_timeout)
        print(f"accept phase ({args.duration:g} s, {args.concurrency} connections)")
        full, full_pipeline, full_cpu = await loaded_phase(
            connection,
            meter,
            generator.closed_loop(accept, args.concurrency, args.duration),
            args.drain_timeout,
        )
        half_rate = max(1.0, full.rate / 2)
        print(f"half-load phase ({args.half_duration:g} s at {half_rate:.0f} msg/s, paced)")
        half, half_pipeline, half_cpu = await loaded_phase(
            connection,
            meter,
            generator.paced(accept, half_rate, args.half_duration, args.concurrency),
            args.drain_timeout,
        )
        postgres_version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()

    def ratio(value: float) -> float:
        return round(value / limit.rate, 3) if limit.rate else 0.0

    def server_ms(cpu: Cpu, rate: float) -> float:
        """Server CPU per request; at half load each message is accepted and processed."""
        return round(cpu.server / rate * 1000, 2) if rate else 0.0

    return {
        "generator": generator.name,
        "postgres": postgres_version,
        "limit": {
            "endpoint": "GET /healthz",
            **limit.summary(),
            "cpu_cores": asdict(limit_cpu),
            "server_cpu_ms_per_request": server_ms(limit_cpu, limit.rate),
        },
        "accept": {
            "endpoint": "POST /api/v1/messages/{fiscal_code}",
            **full.summary(),
            "ratio_to_healthz": ratio(full.rate),
            "cpu_cores": asdict(full_cpu),
        },
        "pipeline": {
            **asdict(full_pipeline),
            "processed_ratio_to_healthz": ratio(full_pipeline.processed_per_s),
        },
        "half_load": {
            "target_per_s": round(half_rate, 1),
            **half.summary(),
            "pipeline": asdict(half_pipeline),
            "cpu_cores": asdict(half_cpu),
            "server_cpu_ms_per_message": server_ms(half_cpu, half.rate),
        },
    }


# --------------------------------------------------------------------------- server


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [str(CIVIO), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=civio_env(data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"civio serve exited with {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{base}/readyz not 200 after {timeout:g} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print("civio serve ignored SIGINT for 30 s; killing it", file=sys.stderr)
            server.kill()
            server.wait()


def stop_cluster(data_dir: Path) -> None:
    """Release our pgserver handle (stops the cluster if we are last), then make sure."""
    import pgserver

    pgdata = (data_dir / "pgdata").resolve()
    if pgdata.exists():
        with contextlib.suppress(Exception):
            pgserver.get_server(pgdata).cleanup()  # type: ignore[attr-defined]
    pid = postmaster_pid(data_dir)
    if pid is not None and psutil.pid_exists(pid):
        with contextlib.suppress(psutil.Error):
            postmaster = psutil.Process(pid)
            postmaster.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
            postmaster.wait(timeout=15)


# --------------------------------------------------------------------------- output


def render(report: dict[str, Any]) -> str:
    limit, accept, pipe = report["limit"], report["accept"], report["pipeline"]
    half, machine = report["half_load"], report["machine"]

    def ms(p50: float | None, p99: float | None) -> str:
        if p50 is None or p99 is None:
            return "n/a"
        return f"{p50:,.0f} / {p99:,.0f} ms"

    rows = [
        ("GET /healthz (limit reference)", f"{limit['per_second']:,.0f} req/s", "1.00"),
        ("  latency p50 / p99", ms(limit["p50_ms"], limit["p99_ms"]), ""),
        (
            "accept: POST /messages/{fc}",
            f"{accept['per_second']:,.0f} msg/s",
            f"{accept['ratio_to_healthz']:.2f}",
        ),
        ("  latency p50 / p99", ms(accept["p50_ms"], accept["p99_ms"]), ""),
        ("  non-201 / socket errors", f"{accept['unexpected_status']} / {accept['errors']}", ""),
        (
            "  backlog at end of accept (max)",
            f"{pipe['backlog_at_end']:,} ({pipe['backlog_max']:,})",
            "",
        ),
        (
            "pipeline: PROCESSED",
            f"{pipe['processed_per_s']:,.0f} msg/s",
            f"{pipe['processed_ratio_to_healthz']:.2f}",
        ),
        ("  accept→PROCESSED p50 / p99", ms(pipe["p50_ms"], pipe["p99_ms"]), ""),
        ("  drain after accept", f"{pipe['drain_seconds']:g} s", ""),
        ("  statuses", ", ".join(f"{k} {v}" for k, v in sorted(pipe["statuses"].items())), ""),
        (
            f"half load: paced {half['target_per_s']:.0f} msg/s",
            f"{half['per_second']:,.0f} msg/s",
            "",
        ),
        ("  latency p50 / p99", ms(half["p50_ms"], half["p99_ms"]), ""),
        ("  non-201 / socket errors", f"{half['unexpected_status']} / {half['errors']}", ""),
        (
            "  accept→PROCESSED p50 / p99",
            ms(half["pipeline"]["p50_ms"], half["pipeline"]["p99_ms"]),
            "",
        ),
        ("  backlog max", f"{half['pipeline']['backlog_max']:,}", ""),
        (
            "server CPU per /healthz request",
            f"{limit['server_cpu_ms_per_request']:.2f} ms",
            "",
        ),
        (
            "server CPU per message (half load)",
            f"{half['server_cpu_ms_per_message']:.2f} ms",
            "",
        ),
    ]
    cpu_rows = [
        (name, phase["cpu_cores"])
        for name, phase in (("limit", limit), ("accept", accept), ("half", half))
    ]
    lines = [
        f"civio accept benchmark — {report['date']}",
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"PostgreSQL {report['postgres']}, generator {report['generator']}, "
        f"{report['config']['concurrency']} connections",
        "",
        f"{'':34} {'value':>22}  vs /healthz",
    ]
    lines += [f"{label:34} {value:>22}  {ratio}" for label, value, ratio in rows]
    lines += ["", "CPU (cores)      server  postgres  generator  other  idle"]
    lines += [
        f"  {name:14} {c['server']:6.2f}  {c['postgres']:8.2f}  {c['generator']:9.2f}  "
        f"{c['other']:5.2f}  {c['idle']:4.2f}"
        for name, c in cpu_rows
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=64, help="connections (64)")
    parser.add_argument("--duration", type=float, default=20, help="accept phase, s (20)")
    parser.add_argument("--half-duration", type=float, default=15, help="half-load phase (15)")
    parser.add_argument("--limit-duration", type=float, default=10, help="/healthz phase (10)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up, s; 0 skips (3)")
    parser.add_argument("--citizens", type=int, default=20, help="registered recipients (20)")
    parser.add_argument("--drain-timeout", type=float, default=300, help="max wait, s (300)")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="closed-loop generator; auto: wrk when on PATH, else Python asyncio",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()
    if not 1 <= args.citizens <= 999:
        parser.error("--citizens must be between 1 and 999")
    return args


def main() -> int:
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = data_dir / "serve.log"
    started = datetime.now(UTC)
    background = psutil.cpu_percent(interval=2.0)
    if background > 10:
        print(f"warning: the machine is already {background:.0f}% busy; figures will be noisy")
    print(f"civio serve on {base}, data dir {data_dir}")
    server = start_server(data_dir, port, log_path)
    try:
        wait_ready(base, server)
        service = json.loads(civio_cli(data_dir, *SERVICE_CREATE))
        codes = fiscal_codes(args.citizens)
        print(f"service {service['service_id']}; creating {len(codes)} citizens")
        create_citizens(data_dir, codes)
        setup = Setup(
            base=base,
            key=service["primary_key"],
            codes=codes,
            database_url=embedded_database_url(data_dir),
            data_dir=data_dir,
            server_pid=server.pid,
        )
        figures = asyncio.run(run_phases(setup, args))
    except BaseException:
        with contextlib.suppress(OSError):
            print(
                f"--- tail of civio serve log ---\n{log_path.read_text()[-3000:]}", file=sys.stderr
            )
        raise
    finally:
        stop_server(server)
        stop_cluster(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

    report = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine_info(), "busy_percent_before": background},
        "config": {
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "half_duration_s": args.half_duration,
            "limit_duration_s": args.limit_duration,
            "warmup_s": args.warmup,
            "citizens": args.citizens,
        },
        **figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print()
    print(render(report))
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
