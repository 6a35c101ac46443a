"""What the benchmark sections share: the isolated platform, load generators, meters.

Every section of ``bench/run.py`` starts from a throw-away data dir under ``/tmp``: either
the embedded platform exactly as ``make run`` starts it (``civio serve`` with
``CIVIO_DATA_DIR`` set, see ``Platform``), or only its embedded PostgreSQL cluster. Nothing
here is specific to one section.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
CIVIO = Path(sys.executable).parent / "civio"
JSON_HEADERS = {"Content-Type": "application/json"}
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
MB = 1024 * 1024
# pgserver's platformdirs complains once per cluster when XDG_RUNTIME_DIR is unset.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

# --------------------------------------------------------------------------- output

_STARTED = time.monotonic()


def log(message: str) -> None:
    """Progress on stderr, prefixed with the time since the benchmark started."""
    elapsed = int(time.monotonic() - _STARTED)
    print(f"[{elapsed // 60:3d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- small helpers


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
    """Valid, distinct fiscal codes (never the sandbox one): six letters count in base 26."""
    codes = []
    for i in range(count):
        letters = "".join(chr(65 + (i // 26**k) % 26) for k in range(5, -1, -1))
        codes.append(f"{letters}80A01H{i % 1000:03d}Z")
    return codes


def git_commit() -> str:
    return subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "civio_commit": git_commit(),
    }


def scratch_dir(prefix: str) -> Path:
    """A throw-away directory under /tmp: short, since PostgreSQL's Unix socket lives there."""
    return Path(tempfile.mkdtemp(prefix=f"cb-{prefix}-", dir="/tmp"))


# --------------------------------------------------------------------------- meters


@dataclass
class Cpu:
    """CPU used during a phase, in cores (CPU seconds / wall seconds)."""

    server: float = 0.0  # the measured server process (civio serve, or the hello-world app)
    postgres: float = 0.0  # the embedded cluster (postmaster and backends)
    generator: float = 0.0  # wrk and/or this process (Python generator, polling)
    other: float = 0.0  # anything else running on the machine (noise)
    idle: float = 0.0


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


class RssSampler:
    """Peak resident set size of named processes (each with its children), sampled in a thread.

    PostgreSQL processes are never counted, even when one happens to be a child.
    """

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._interval = interval
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.last: dict[str, int] = dict.fromkeys(pids, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    @staticmethod
    def _rss(process: psutil.Process) -> int:
        total = 0
        with contextlib.suppress(psutil.Error):
            for each in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    if each.name() not in ("postgres", "pg_ctl"):
                        total += each.memory_info().rss
        return total

    def sample(self) -> None:
        for name, process in self._processes.items():
            rss = self._rss(process)
            self.last[name] = rss
            self.peak[name] = max(self.peak[name], rss)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self) -> dict[str, float]:
        return {name: round(rss / MB, 1) for name, rss in self.peak.items()}

    def last_mb(self) -> dict[str, float]:
        return {name: round(rss / MB, 1) for name, rss in self.last.items()}


# --------------------------------------------------------------------------- load results


@dataclass
class Load:
    """What one load-generator run saw on the wire."""

    generator: str
    seconds: float
    responses: int  # responses received, any status
    expected: int  # responses with the expected status (201, or 200 for GETs)
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


@dataclass(frozen=True)
class Target:
    """One kind of request: method, paths (cycled), body and the status that means success."""

    method: str
    paths: list[str]
    expected: int
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- wrk

WRK_SCRIPT = """\
-- generated by bench/common.py
local paths = {%(paths)s}
local expected = %(expected)d
local quota = %(quota)d  -- responses per thread, then the thread stops; 0: no limit
local progress = "%(progress)s"  -- per-thread progress file prefix; "": none
wrk.method = "%(method)s"
%(headers)s
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
  received = 0
end

function request()
  counter = counter + 1
  return prepared[counter %% #prepared + 1]
end

local function report()
  local f = io.open(progress .. offset, "w")
  if f then
    f:write(received, " ", unexpected, "\\n")
    f:close()
  end
end

function response(status, headers, body)
  received = received + 1
  if status ~= expected then unexpected = unexpected + 1 end
  if progress ~= "" and received %% 500 == 0 then report() end
  if quota > 0 and received >= quota then
    if progress ~= "" then report() end
    wrk.thread:stop()
  end
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


def wrk_threads(connections: int) -> int:
    """The wrk setting every section uses: one thread per CPU (at most one per connection)."""
    return max(1, min(os.cpu_count() or 1, connections))


class WrkRun:
    """A running wrk process; ``stop()`` ends it early (SIGINT: wrk still reports)."""

    def __init__(self, process: asyncio.subprocess.Process, threads: int, connections: int):
        self.process, self.threads, self.connections = process, threads, connections

    def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)

    async def result(self) -> Load:
        stdout, stderr = await self.process.communicate()
        text = stdout.decode()
        line = next((x for x in text.splitlines() if x.startswith("BENCH_JSON ")), None)
        if self.process.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({self.process.returncode}):\n{text}\n{stderr!r}")
        data = json.loads(line.removeprefix("BENCH_JSON "))
        return Load(
            generator=f"wrk -t{self.threads} -c{self.connections}",
            seconds=data["duration_us"] / 1e6,
            responses=data["responses"],
            expected=data["responses"] - data["unexpected"],
            errors=data["errors"],
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            max_ms=data["max_us"] / 1000,
        )


def read_wrk_progress(prefix: Path, threads: int) -> tuple[int, int]:
    """Responses and unexpected statuses so far, summed over wrk's per-thread files."""
    received = unexpected = 0
    for index in range(threads):
        with contextlib.suppress(OSError, ValueError):
            first, second = Path(f"{prefix}{index}").read_text().split()
            received, unexpected = received + int(first), unexpected + int(second)
    return received, unexpected


# --------------------------------------------------------------------------- Python client

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


# --------------------------------------------------------------------------- generator


class Generator:
    """Closed-loop load (wrk, or Python) at fixed concurrency; open-loop paced load (Python)."""

    def __init__(self, base: str, key: str, work_dir: Path, use_wrk: bool = True) -> None:
        self.base, self.key, self.work_dir = base, key, work_dir
        self.wrk = shutil.which("wrk") if use_wrk else None
        self.name = "wrk" if self.wrk else "python-asyncio"

    async def closed_loop(self, target: Target, connections: int, seconds: float) -> Load:
        if self.wrk:
            return await (await self.start_wrk(target, connections, seconds)).result()
        return await self._python_closed(target, connections, seconds)

    async def start_wrk(
        self,
        target: Target,
        connections: int,
        seconds: float,
        *,
        quota: int = 0,
        progress: Path | None = None,
    ) -> WrkRun:
        """Start wrk with a Lua script that cycles ``target.paths`` and counts bad statuses.

        ``quota``: each thread stops after that many responses (wrk itself keeps waiting
        until ``seconds`` or ``WrkRun.stop()``). ``progress``: each thread writes its counts
        to ``<progress><thread>`` every 500 responses (``read_wrk_progress``).
        """
        if self.wrk is None:
            raise RuntimeError("wrk is not on PATH (apt-get install -y wrk)")
        headers = {"Ocp-Apim-Subscription-Key": self.key, **target.headers}
        body = ""
        if target.body is not None:
            headers.setdefault("Content-Type", "application/json")
            body = f"wrk.body = [==[{target.body}]==]"
        script = self.work_dir / f"load-{time.monotonic_ns()}.lua"
        script.write_text(
            WRK_SCRIPT
            % {
                "paths": ", ".join(f'"{p}"' for p in target.paths),
                "expected": target.expected,
                "quota": quota,
                "progress": str(progress or ""),
                "method": target.method,
                "headers": "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
                "body": body,
            }
        )
        threads = wrk_threads(connections)
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
        return WrkRun(process, threads, connections)

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


# --------------------------------------------------------------------------- processes


def start_process(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output appended to ``log_path``."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            command, env=env or dict(os.environ), stdout=log_file, stderr=subprocess.STDOUT
        )


def wait_http_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} not 200 after {timeout:g} s")


def stop_process(process: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} ignored SIGINT for {timeout:g} s; killing it")
            process.kill()
            process.wait()


def postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


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


@contextlib.contextmanager
def embedded_cluster(prefix: str) -> Iterator[tuple[Path, str]]:
    """Only the embedded PostgreSQL cluster on a throw-away data dir: (data dir, URL)."""
    from civio.core.embedded import embedded_database_url

    data_dir = scratch_dir(prefix)
    try:
        yield data_dir, embedded_database_url(data_dir)
    finally:
        stop_cluster(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- the platform


def ulid_floor(message_id: str, seconds_before: float) -> str:
    """The smallest ULID of the millisecond ``seconds_before`` before ``message_id``'s."""
    from ulid import ULID

    moment = ULID.from_str(message_id).timestamp - seconds_before
    return str(ULID.from_timestamp(max(0.0, moment)))[:10] + "0" * 16


class Backlog:
    """How many messages of one sender are still ACCEPTED, reading only its recent ids.

    ``messages`` has no index on status; this walks ``(sender_service_id, id)`` from a
    watermark kept 30 s before the oldest ACCEPTED message seen (ids are time-ordered ULIDs,
    and no request waits 30 s between taking its id and committing), so each poll costs
    about the backlog, not the table.
    """

    SQL = """
        SELECT count(*) FILTER (WHERE status = 'ACCEPTED') AS accepted,
               min(id) FILTER (WHERE status = 'ACCEPTED') AS oldest,
               max(id) AS newest
        FROM messages WHERE sender_service_id = $1 AND id > $2
    """

    def __init__(self, connection: asyncpg.Connection, service_id: str) -> None:
        self._connection, self._service_id = connection, service_id
        self._watermark = ""
        self.query_seconds = 0.0

    async def count(self) -> int:
        started = time.perf_counter()
        row = await self._connection.fetchrow(self.SQL, self._service_id, self._watermark)
        self.query_seconds = time.perf_counter() - started
        anchor = row["oldest"] or row["newest"]
        if anchor:
            self._watermark = max(self._watermark, ulid_floor(anchor, 30.0))
        accepted: int = row["accepted"]
        return accepted


async def statuses(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch("SELECT status, count(*) AS n FROM messages GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


async def wait_until_processed(
    backlog: Backlog,
    connection: asyncpg.Connection,
    timeout: float,
    progress: Callable[[int], Awaitable[None]] | None = None,
) -> float:
    """Seconds until no message is ACCEPTED (confirmed on the whole table) or ``timeout``."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        remaining = await backlog.count()
        if remaining == 0 and (await statuses(connection)).get("ACCEPTED", 0) == 0:
            break
        if progress is not None:
            await progress(remaining)
        # Poll often when it is cheap; never spend more than ~2% of a core on it.
        await asyncio.sleep(max(0.25, 50 * backlog.query_seconds))
    return time.perf_counter() - start


@dataclass
class Platform:
    """The embedded platform as ``make run`` starts it, on a throw-away data dir.

    ``civio serve`` (API and, unless ``separate_worker``, the in-process worker) with
    ``CIVIO_DATA_DIR`` set; with ``separate_worker`` also one ``civio worker`` process. It
    provisions one service (``ApiMessageWrite``, ``ApiMessageRead``, ``ApiNoRateLimit``)
    with the CLI and ``citizens`` citizens with civio's own ``create_citizen`` (the CLI's
    code, in one process: 1,000 CLI processes would take minutes).
    """

    name: str
    citizens: int = 20
    separate_worker: bool = False
    data_dir: Path = field(init=False)
    base: str = field(init=False)
    key: str = field(init=False)
    service_id: str = field(init=False)
    codes: list[str] = field(init=False)
    database_url: str = field(init=False)
    server: subprocess.Popen[bytes] = field(init=False)
    worker: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CIVIO_DATA_DIR": str(self.data_dir),
            "CIVIO_MASTER_KEY": self._master_key,
            "CIVIO_LOG_LEVEL": "WARNING",
        }

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(CIVIO), *args], env=self.env(), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"civio {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def __enter__(self) -> Platform:
        from civio.core.embedded import embedded_database_url

        self.data_dir = scratch_dir(self.name)
        self._master_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self._log = self.data_dir / "civio.log"
        try:
            # Start the cluster from here so that it is no child of the measured server.
            self.database_url = embedded_database_url(self.data_dir)
            port = free_port()
            self.base = f"http://127.0.0.1:{port}"
            command = [str(CIVIO), "serve", "--host", "127.0.0.1", "--port", str(port)]
            if self.separate_worker:
                command.append("--no-worker")
            log(f"{self.name}: {' '.join(command[1:])} on {self.data_dir}")
            self.server = start_process(command, self._log, self.env())
            wait_http_ready(f"{self.base}/readyz", self.server)
            if self.separate_worker:
                self.worker = start_process([str(CIVIO), "worker"], self._log, self.env())
            service = json.loads(self.cli(*SERVICE_CREATE))
            self.key, self.service_id = service["primary_key"], service["service_id"]
            self.codes = fiscal_codes(self.citizens)
            started = time.perf_counter()
            asyncio.run(self._create_citizens())
            log(
                f"{self.name}: service {self.service_id}, {len(self.codes):,} citizens "
                f"({time.perf_counter() - started:.1f} s)"
            )
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    async def _create_citizens(self) -> None:
        from civio.core.config import Settings
        from civio.core.db import transaction
        from civio.core.runtime import Runtime
        from civio.profiles.service import create_citizen

        settings = Settings(
            database_url=self.database_url,
            data_dir=self.data_dir,
            master_key=self._master_key,
            log_level="WARNING",
        )
        runtime = Runtime.build(settings, pool_size=1)
        try:
            for start in range(0, len(self.codes), 200):
                async with transaction(runtime.sessions) as session:
                    for code in self.codes[start : start + 200]:
                        await create_citizen(
                            session,
                            runtime.keyring,
                            code,
                            email=None,
                            mode="AUTO",
                            inbox=True,
                            blocked_services=[],
                        )
        finally:
            await runtime.close()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is not None:
            with contextlib.suppress(OSError):
                log(f"--- tail of the civio log ---\n{self._log.read_text()[-3000:]}")
        if self.worker is not None:
            stop_process(self.worker, "civio worker")
        if hasattr(self, "server"):
            stop_process(self.server, "civio serve")
        stop_cluster(self.data_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def postmaster(self) -> int | None:
        return postmaster_pid(self.data_dir)

    def message_target(self) -> Target:
        paths = [f"/api/v1/messages/{code}" for code in self.codes]
        return Target("POST", paths, 201, MESSAGE_BODY)

    async def probe(self) -> None:
        """One message through the API: fail early and clearly if accepting does not work."""
        async with httpx.AsyncClient(base_url=self.base) as client:
            response = await client.post(
                f"/api/v1/messages/{self.codes[0]}",
                content=MESSAGE_BODY,
                headers={"Ocp-Apim-Subscription-Key": self.key, **JSON_HEADERS},
            )
        if response.status_code != 201:
            raise RuntimeError(f"probe POST got {response.status_code}: {response.text}")
