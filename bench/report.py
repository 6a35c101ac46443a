"""From the combined results to pass/fail, ratios, the Markdown table and the chart.

Everything here reads only ``bench/results/latest.json``'s structure, so
``bench/run.py --render-only`` can redraw the table and the chart without measuring.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
MILLION = 1_000_000

# The targets of the performance issue.
ACCEPT_RATIO_MIN = 0.40
ACCEPT_P99_MAX_MS = 100.0
PIPELINE_P99_MAX_MS = 1000.0
INBOX_PAGE_P99_MAX_MS = 20.0
INBOX_SEARCH_P99_MAX_MS = 50.0
VOLUME_MAX_S = 600.0
RSS_MAX_MB = 250.0

INBOX_PAGES = ("page1", "deep_page")
INBOX_SEARCHES = ("search_rare", "search_common", "search_two_words")


def get(data: dict[str, Any] | None, *path: str) -> Any:
    """``data[path[0]][path[1]]…`` or None when any step is missing."""
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def divide(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# --------------------------------------------------------------------------- targets


@dataclass
class Check:
    id: str
    section: str
    label: str
    value: float | None
    unit: str
    target: str  # human form: "≥ 0.40", "< 100 ms"
    passed: bool | None  # None: not measured
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "pass": self.passed,
            "note": self.note,
        }


def _check(
    id_: str,
    section: str,
    label: str,
    value: float | None,
    unit: str,
    target: str,
    test: Callable[[float], bool],
    note: str = "",
) -> Check:
    return Check(
        id_, section, label, value, unit, target, None if value is None else test(value), note
    )


def worst(
    latencies: dict[str, Any] | None, keys: tuple[str, ...]
) -> tuple[str | None, float | None]:
    """The key and p99 of the slowest of ``keys`` in the inbox's HTTP figures."""
    found = [(k, latencies[k]["p99_ms"]) for k in keys if latencies and k in latencies]
    if not found:
        return None, None
    return max(found, key=lambda item: item[1])


def is_projection(volume: dict[str, Any]) -> bool:
    """A run of fewer messages is scaled up to 1,000,000 and shown as a projection; a full
    run stops at most one in-flight request per connection short (wrk stops its threads
    with requests outstanding), which is scaled too but is a measurement."""
    return bool(volume["messages"] < 0.999 * MILLION)


def volume_seconds(volume: dict[str, Any] | None) -> tuple[float | None, bool]:
    """Seconds to accept and process 1,000,000 messages, and whether that is a projection."""
    if not volume:
        return None, False
    if "projected_1m_seconds" in volume:
        return volume["projected_1m_seconds"], is_projection(volume)
    return volume.get("all_processed_seconds"), False


def checks(sections: dict[str, Any]) -> list[Check]:
    limits, accept = sections.get("limits"), sections.get("accept")
    pipeline, inbox = sections.get("pipeline"), sections.get("inbox")
    volume, memory = sections.get("volume"), sections.get("memory")
    hello = get(limits, "hello_world", "per_second")
    same_run = get(limits, "run", "id") == get(accept, "run", "id")
    ratio_note = "" if same_run or not (limits and accept) else "limit from another run"
    page_key, page_p99 = worst(get(inbox, "http"), INBOX_PAGES)
    search_key, search_p99 = worst(get(inbox, "http"), INBOX_SEARCHES)
    seconds, projected = volume_seconds(volume)
    half = get(pipeline, "half_load")
    return [
        _check(
            "accept_vs_hello_world",
            "accept",
            "accept msg/s ÷ hello-world req/s",
            divide(get(accept, "per_second"), hello),
            "",
            f"≥ {ACCEPT_RATIO_MIN:.2f}",
            lambda v: v >= ACCEPT_RATIO_MIN,
            ratio_note,
        ),
        _check(
            "accept_p99",
            "accept",
            "accept HTTP p99 (64 connections)",
            get(accept, "p99_ms"),
            "ms",
            f"< {ACCEPT_P99_MAX_MS:.0f} ms",
            lambda v: v < ACCEPT_P99_MAX_MS,
        ),
        _check(
            "accept_errors",
            "accept",
            "accept errors (non-201 + socket)",
            get(accept, "errors_total"),
            "",
            "= 0",
            lambda v: v == 0,
        ),
        _check(
            "pipeline_keeps_up",
            "pipeline",
            "backlog growth while accepting (last half)",
            get(pipeline, "backlog_growth_per_s"),
            "msg/s",
            "≤ 1% of accept rate, or < 1 s of accepts left",
            lambda _: bool(get(pipeline, "keeps_up")),
        ),
        _check(
            "pipeline_p99_half_load",
            "pipeline",
            "accept→PROCESSED p99 at half load",
            get(half, "accept_to_processed_p99_ms"),
            "ms",
            f"< {PIPELINE_P99_MAX_MS:,.0f} ms",
            lambda v: v < PIPELINE_P99_MAX_MS,
        ),
        _check(
            "inbox_page_p99",
            "inbox",
            "inbox page p99 (page 1, deep page)",
            page_p99,
            "ms",
            f"< {INBOX_PAGE_P99_MAX_MS:.0f} ms",
            lambda v: v < INBOX_PAGE_P99_MAX_MS,
            f"worst: {page_key}" if page_key else "",
        ),
        _check(
            "inbox_search_p99",
            "inbox",
            "inbox search p99 (3 searches)",
            search_p99,
            "ms",
            f"< {INBOX_SEARCH_P99_MAX_MS:.0f} ms",
            lambda v: v < INBOX_SEARCH_P99_MAX_MS,
            f"worst: {search_key}" if search_key else "",
        ),
        _check(
            "volume_1m",
            "volume",
            "1,000,000 messages accepted + processed",
            seconds,
            "s",
            f"< {VOLUME_MAX_S / 60:.0f} min",
            lambda v: v < VOLUME_MAX_S,
            f"projected from {volume['messages']:,}" if projected and volume else "",
        ),
        _check(
            "memory_api",
            "memory",
            "peak RSS, API (serve --no-worker)",
            get(memory, "rss_peak_mb", "api"),
            "MB",
            f"< {RSS_MAX_MB:.0f} MB",
            lambda v: v < RSS_MAX_MB,
        ),
        _check(
            "memory_worker",
            "memory",
            "peak RSS, worker (civio worker)",
            get(memory, "rss_peak_mb", "worker"),
            "MB",
            f"< {RSS_MAX_MB:.0f} MB",
            lambda v: v < RSS_MAX_MB,
        ),
        _check(
            "memory_serve",
            "volume",
            "peak RSS, civio serve (API + in-process worker)",
            get(volume, "rss_peak_mb", "serve"),
            "MB",
            f"< {RSS_MAX_MB:.0f} MB",
            lambda v: v < RSS_MAX_MB,
        ),
    ]


# --------------------------------------------------------------------------- ratios


def ratios(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """Every civio figure over the matching limit (throughput: a fraction; latency: a multiple)."""
    limits = sections.get("limits")
    accept, pipeline = sections.get("accept"), sections.get("pipeline")
    notes, inbox, volume = (
        sections.get("notifications"),
        sections.get("inbox"),
        sections.get("volume"),
    )
    hello = get(limits, "hello_world")
    single, batch = get(limits, "postgres", "single_row"), get(limits, "postgres", "batch_100")
    out: list[dict[str, Any]] = []

    def add(figure: str, value: Any, limit: str, limit_value: Any, unit: str = "") -> None:
        if value is None:
            return
        out.append(
            {
                "figure": figure,
                "value": value,
                "unit": unit,
                "limit": limit,
                "limit_value": limit_value,
                "ratio": divide(value, limit_value),
            }
        )

    add("accept msg/s", get(accept, "per_second"), "hello-world req/s", get(hello, "per_second"))
    add(
        "accept msg/s",
        get(accept, "per_second"),
        "PostgreSQL single-row commits/s",
        get(single, "commits_per_s"),
    )
    add("accept HTTP p50", get(accept, "p50_ms"), "hello-world p50", get(hello, "p50_ms"), "ms")
    add("accept HTTP p99", get(accept, "p99_ms"), "hello-world p99", get(hello, "p99_ms"), "ms")
    add(
        "civio GET /healthz req/s",
        get(accept, "healthz", "per_second"),
        "hello-world req/s",
        get(hello, "per_second"),
    )
    add(
        "processed msg/s while accepting",
        get(pipeline, "processed_per_s"),
        "accepted msg/s, same window",
        get(pipeline, "accepted_per_s"),
    )
    add(
        "processed msg/s while accepting",
        get(pipeline, "processed_per_s"),
        "PostgreSQL rows/s, 100-row batches",
        get(batch, "rows_per_s"),
    )
    add(
        "accept→PROCESSED p50, half load",
        get(pipeline, "half_load", "accept_to_processed_p50_ms"),
        "PostgreSQL single-row commit p50",
        get(single, "p50_ms"),
        "ms",
    )
    add(
        "accept→PROCESSED p99, half load",
        get(pipeline, "half_load", "accept_to_processed_p99_ms"),
        "PostgreSQL single-row commit p99",
        get(single, "p99_ms"),
        "ms",
    )
    add(
        "emails/s",
        get(notes, "channels", "EMAIL", "sent_per_second"),
        "SMTP server emails/s (no civio)",
        get(notes, "receiver_limits", "smtp", "per_second"),
    )
    add(
        "pushes/s",
        get(notes, "channels", "WEBHOOK", "sent_per_second"),
        "push receiver req/s (no civio)",
        get(notes, "receiver_limits", "push", "per_second"),
    )
    baseline = get(inbox, "http_baseline_auth_only", "p99_ms")
    for key in (*INBOX_PAGES, *INBOX_SEARCHES):
        add(
            f"inbox {key} p99",
            get(inbox, "http", key, "p99_ms"),
            "token check alone p99",
            baseline,
            "ms",
        )
    add(
        "volume msg/s accepted",
        get(volume, "accept_per_s"),
        "hello-world req/s",
        get(hello, "per_second"),
    )
    add(
        "volume msg/s end to end",
        get(volume, "end_to_end_per_s"),
        "hello-world req/s",
        get(hello, "per_second"),
    )
    return out


# --------------------------------------------------------------------------- formatting


def num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f} ms" if value < 10 else f"{value:,.0f} ms"


def fraction(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def times(value: float | None) -> str:
    return "" if value is None else f"×{value:,.1f}"


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:,.0f} s"


def verdict(check: Check | None) -> str:
    if check is None or check.passed is None:
        return ""
    return "pass" if check.passed else "**FAIL**"


@dataclass
class Row:
    section: str
    figure: str
    value: str
    limit: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


def table_rows(report: dict[str, Any]) -> list[Row]:
    """The table of docs/performance.md and of the run's summary, section by section."""
    sections = report.get("sections", {})
    by_id = {c.id: c for c in checks(sections)}
    rows: list[Row] = []

    def target_row(
        section: str,
        figure: str,
        value: str,
        check_id: str,
        passed: bool | None = None,
        **kw: str,
    ) -> None:
        """A row with the target of ``check_id``; ``passed`` overrides its verdict."""
        check = by_id.get(check_id)
        result = verdict(check)
        if passed is not None:
            result = "pass" if passed else "**FAIL**"
        rows.append(
            Row(section, figure, value, target=check.target if check else "", result=result, **kw)
        )

    limits = sections.get("limits")
    hello = get(limits, "hello_world")
    pg = get(limits, "postgres")
    hello_rate = get(hello, "per_second")
    single_rate = get(pg, "single_row", "commits_per_s")
    if hello:
        server = hello.get("server", {})
        rows.append(
            Row(
                "limits",
                f"hello-world `GET /hello`, civio's server config (uvicorn, {server.get('loop')}, "
                f"{server.get('http')}, 1 worker), {hello['generator']}",
                f"{num(hello_rate)} req/s; p50 {ms(hello['p50_ms'])}, p99 {ms(hello['p99_ms'])}",
            )
        )
    if pg:
        single, batch = pg["single_row"], pg["batch_100"]
        rows.append(
            Row(
                "limits",
                f"PostgreSQL {pg['postgres']} single-row commits, {single['clients']} clients, "
                "1 KB row (pgbench)",
                f"{num(single['commits_per_s'])} commits/s; p50 {ms(single['p50_ms'])}, "
                f"p99 {ms(single['p99_ms'])}",
            )
        )
        rows.append(
            Row(
                "limits",
                f"PostgreSQL 100-row batches, {batch['clients']} clients (pgbench)",
                f"{num(batch['rows_per_s'])} rows/s",
            )
        )

    accept = sections.get("accept")
    if accept:
        check = by_id["accept_vs_hello_world"]
        rows.append(
            Row(
                "accept",
                f"`POST /api/v1/messages/{{fc}}`, {accept['connections']} connections, "
                f"{accept['seconds']:.0f} s, `ApiNoRateLimit`",
                f"**{num(accept['per_second'])} msg/s**",
                f"hello-world {num(hello_rate)} req/s",
                fraction(check.value),
                check.target,
                verdict(check) + (f" ({check.note})" if check.note else ""),
            )
        )
        if single_rate:
            rows.append(
                Row(
                    "accept",
                    "the same, against PostgreSQL's commits",
                    f"{num(accept['per_second'])} msg/s",
                    f"{num(single_rate)} commits/s",
                    fraction(divide(accept["per_second"], single_rate)),
                )
            )
        target_row(
            "accept",
            "HTTP latency p50 / p99",
            f"{ms(accept['p50_ms'])} / {ms(accept['p99_ms'])}",
            "accept_p99",
            limit=f"hello-world {ms(get(hello, 'p50_ms'))} / {ms(get(hello, 'p99_ms'))}"
            if hello
            else "",
            ratio=times(divide(accept["p99_ms"], get(hello, "p99_ms"))),
        )
        target_row(
            "accept",
            "non-201 answers + socket errors",
            f"{accept['unexpected_status']} + {accept['errors']} (of {num(accept['responses'])})",
            "accept_errors",
        )
        healthz = accept.get("healthz")
        if healthz:
            rows.append(
                Row(
                    "accept",
                    "civio `GET /healthz` (middleware, no database)",
                    f"{num(healthz['per_second'])} req/s",
                    f"hello-world {num(hello_rate)} req/s",
                    fraction(divide(healthz["per_second"], hello_rate)),
                )
            )

    pipeline = sections.get("pipeline")
    if pipeline:
        batch_rows = get(pg, "batch_100", "rows_per_s")
        rows.append(
            Row(
                "pipeline",
                f"PROCESSED while accepting at full load ({pipeline['window_s']:.0f} s, "
                "in-process worker)",
                f"**{num(pipeline['processed_per_s'])} msg/s** "
                f"(accepted {num(pipeline['accepted_per_s'])}/s)",
                f"PostgreSQL {num(batch_rows)} rows/s (batches)" if batch_rows else "",
                fraction(divide(pipeline["processed_per_s"], batch_rows)),
            )
        )
        target_row(
            "pipeline",
            "backlog (ACCEPTED) at the end; growth over the last half",
            f"{num(pipeline['backlog_at_end'])}; {num(pipeline['backlog_growth_per_s'], 1)} msg/s",
            "pipeline_keeps_up",
            limit="accepted/s",
            ratio=fraction(divide(pipeline["processed_per_s"], pipeline["accepted_per_s"])),
        )
        half = pipeline["half_load"]
        target_row(
            "pipeline",
            f"accept→PROCESSED p50 / p99 at half load ({num(half['target_per_s'])} msg/s paced)",
            f"{ms(half['accept_to_processed_p50_ms'])} / "
            f"**{ms(half['accept_to_processed_p99_ms'])}**",
            "pipeline_p99_half_load",
            limit=f"PostgreSQL commit {ms(get(pg, 'single_row', 'p50_ms'))} / "
            f"{ms(get(pg, 'single_row', 'p99_ms'))}"
            if pg
            else "",
            ratio=times(
                divide(half["accept_to_processed_p99_ms"], get(pg, "single_row", "p99_ms"))
            ),
        )

    notes = sections.get("notifications")
    if notes:
        for channel, label, limit_key, unit in (
            ("EMAIL", "emails to a local SMTP server", "smtp", "emails/s"),
            ("WEBHOOK", "pushes to a local HTTP receiver", "push", "pushes/s"),
        ):
            rate = get(notes, "channels", channel, "sent_per_second")
            limit = get(notes, "receiver_limits", limit_key, "per_second")
            rows.append(
                Row(
                    "notifications",
                    f"{label} ({num(notes['messages'])} messages)",
                    f"**{num(rate, 1)} {unit}**",
                    f"receiver alone {num(limit)} {unit}" if limit else "",
                    fraction(divide(rate, limit)),
                )
            )

    inbox = sections.get("inbox")
    if inbox:
        baseline = get(inbox, "http_baseline_auth_only")
        data = inbox["data"]
        for key in (*INBOX_PAGES, *INBOX_SEARCHES):
            latency = get(inbox, "http", key)
            if latency is None:
                continue
            page = key in INBOX_PAGES
            limit_ms = INBOX_PAGE_P99_MAX_MS if page else INBOX_SEARCH_P99_MAX_MS
            target_row(
                "inbox",
                f"{latency['label']} — {num(data['inbox_size'])} messages among "
                f"{num(data['messages_total'])}",
                f"{ms(latency['p50_ms'])} / **{ms(latency['p99_ms'])}**",
                "inbox_page_p99" if page else "inbox_search_p99",
                passed=latency["p99_ms"] < limit_ms,
                limit=f"token check {ms(get(baseline, 'p99_ms'))}" if baseline else "",
                ratio=times(divide(latency["p99_ms"], get(baseline, "p99_ms"))),
            )

    volume = sections.get("volume")
    if volume:
        seconds, projected = volume_seconds(volume)
        rows.append(
            Row(
                "volume",
                f"{num(volume['messages'])} messages via wrk ({volume['connections']} "
                f"connections, {num(volume['citizens'])} citizens): all accepted",
                f"{minutes(volume['accept_seconds'])} ({num(volume['accept_per_s'])} msg/s)",
                f"hello-world {num(hello_rate)} req/s",
                fraction(divide(volume["accept_per_s"], hello_rate)),
            )
        )
        rows.append(
            Row(
                "volume",
                "… and all processed (none ACCEPTED)",
                f"{minutes(volume['all_processed_seconds'])} "
                f"({num(volume['end_to_end_per_s'])} msg/s end to end); "
                f"{volume['errors_total']} errors",
            )
        )
        target_row(
            "volume",
            "1,000,000 messages accepted + processed"
            + (" (linear projection)" if projected else ""),
            f"**{minutes(seconds)}**",
            "volume_1m",
        )
        target_row(
            "memory",
            "peak RSS, `civio serve` (API + in-process worker), during volume",
            f"{num(get(volume, 'rss_peak_mb', 'serve'))} MB",
            "memory_serve",
        )

    memory = sections.get("memory")
    if memory:
        for key, label in (("api", "API (`serve --no-worker`)"), ("worker", "`civio worker`")):
            target_row(
                "memory",
                f"peak RSS, {label}, {num(memory['messages'])} messages",
                f"**{num(get(memory, 'rss_peak_mb', key))} MB**",
                f"memory_{key}",
            )
    return rows


def run_line(report: dict[str, Any]) -> tuple[str, bool]:
    """Who measured what, when; and whether any section comes from a quick run."""
    sections = report.get("sections", {})
    metas = {name: s["run"] for name, s in sections.items() if "run" in s}
    quick = any(meta.get("quick") for meta in metas.values())
    machine = report.get("machine", {})
    latest = max((meta["date"] for meta in metas.values()), default="n/a")
    older: dict[str, list[str]] = {}
    for name in SECTION_ORDER:
        meta = metas.get(name)
        if meta and meta["date"] != latest:
            older.setdefault(f"{meta['date']}, {meta.get('commit', '?')}", []).append(name)
    commits = sorted({meta.get("commit", "?") for meta in metas.values()})
    line = (
        f"Run of {latest}, commit {', '.join(commits)}; {machine.get('nproc')} CPUs "
        f"({machine.get('cpu_model')}), {machine.get('memory_gib')} GiB, Python "
        f"{machine.get('python')}, {machine.get('wrk', 'wrk')}."
    )
    busy = [meta.get("busy_percent_before") for meta in metas.values() if meta["date"] == latest]
    if busy and busy[0] is not None and busy[0] > 10:
        line += f" The machine was {busy[0]:.0f}% busy before the run: noisy figures."
    if older:
        runs = "; ".join(f"{', '.join(names)} ({when})" for when, names in older.items())
        line += f" From earlier runs: {runs}."
    missing = [name for name in SECTION_ORDER if name not in sections]
    if missing:
        line += f" Not measured: {', '.join(missing)}."
    return line, quick


SECTION_ORDER = ("limits", "accept", "pipeline", "notifications", "inbox", "volume", "memory")


def markdown(report: dict[str, Any], chart_name: str) -> str:
    line, quick = run_line(report)
    all_checks = [c for c in checks(report.get("sections", {})) if c.passed is not None]
    met = sum(1 for c in all_checks if c.passed)
    head = (
        "**Quick smoke run (`make bench-quick`), not the reference figures:** small sizes and "
        "short phases, only to check that every section works. "
        if quick
        else ""
    )
    lines = [
        BEGIN,
        "<!-- generated by bench/run.py from bench/results/latest.json: do not edit by hand -->",
        "",
        f"{head}{line} Targets met: **{met} of {len(all_checks)}**.",
        "",
        f"![civio against its limits and targets]({chart_name})",
        "",
        "| section | figure | civio | matching limit | vs limit | target | result |",
        "|---|---|---|---|---:|---|---|",
    ]
    for row in table_rows(report):
        cells = (row.section, row.figure, row.value, row.limit, row.ratio, row.target, row.result)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failures = report.get("failures", {})
    for name, failure in sorted(failures.items()):
        lines += [
            "",
            f"Section **{name}** failed in the run of {failure['run']['date']}: "
            f"`{failure['error'].strip().splitlines()[-1]}`",
        ]
    lines.append(END)
    return "\n".join(lines)


def update_doc(path: Path, block: str) -> bool:
    """Replace the text between the markers; False when the markers are missing."""
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda _: block, text, count=1))
    return True


def text_summary(report: dict[str, Any]) -> str:
    """The same table for a terminal."""
    line, quick = run_line(report)
    rows = table_rows(report)
    out = ["QUICK SMOKE RUN — not the reference figures" if quick else "", line, ""]
    width = max((len(r.figure) for r in rows), default=10)
    width = min(width, 78)
    strip = lambda s: s.replace("**", "").replace("`", "")  # noqa: E731
    for row in rows:
        figure = strip(row.figure)
        if len(figure) > width:
            figure = figure[: width - 1] + "…"
        extra = "  ".join(
            x for x in (strip(row.limit), row.ratio, row.target, strip(row.result)) if x
        )
        out.append(
            f"{row.section:13} {figure:{width}}  {strip(row.value)}"
            + (f"   [{extra}]" if extra else "")
        )
    return "\n".join(out).strip("\n")


# --------------------------------------------------------------------------- chart

GREEN, RED, GREY = "#2e7d32", "#c62828", "#78909c"


@dataclass
class Bar:
    label: str
    value: float
    passed: bool | None = None  # colour: green, red, or grey (no target)
    target: float | None = None  # a tick across this bar only
    note: str = ""
    hatched: bool = False  # a projection, not a measurement


def _colour(passed: bool | None) -> str:
    return GREY if passed is None else GREEN if passed else RED


def chart(report: dict[str, Any], path: Path) -> None:
    """Four panels a reader understands without the table; pass/fail in green/red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = report.get("sections", {})
    by_id = {c.id: c for c in checks(sections)}
    line, quick = run_line(report)
    fig = plt.figure(figsize=(15, 10.5), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=[1.35, 1], hspace=0.45, wspace=0.75)
    _throughput(fig.add_subplot(grid[0, 0]), sections, by_id)
    _latency(fig.add_subplot(grid[0, 1]), sections, by_id)
    _volume(fig.add_subplot(grid[1, 0]), sections, by_id)
    _memory(fig.add_subplot(grid[1, 1]), sections, by_id)
    met = [c.passed for c in by_id.values() if c.passed is not None]
    fig.suptitle(
        f"civio benchmark — targets met: {sum(met)} of {len(met)}",
        fontsize=16,
        fontweight="bold",
        y=0.99,
    )
    subtitle = "\n".join(textwrap.wrap(line, 175))
    fig.text(0.5, 0.955, subtitle, ha="center", va="top", fontsize=8.5, color="#455a64")
    if quick:
        fig.text(
            0.5,
            0.905,
            "QUICK SMOKE RUN — small sizes and short phases, not the reference figures",
            ha="center",
            fontsize=12,
            color=RED,
            fontweight="bold",
        )
    fig.text(
        0.01,
        0.006,
        "green: meets its target · red: misses it · grey: no target, only a ratio to its "
        "limit · hatched: projected · generated by bench/run.py from bench/results/latest.json",
        fontsize=8,
        color="#455a64",
    )
    fig.subplots_adjust(left=0.16, right=0.95, top=0.85, bottom=0.07)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _empty(ax: Any, title: str) -> None:
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    ax.text(0.5, 0.5, "not measured", ha="center", va="center", color=GREY, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(
    ax: Any, title: str, bars: list[Bar], xmax: float, *, shared: tuple[float, str] | None = None
) -> None:
    """Horizontal bars, top to bottom, each with its note; ``shared``: one target line."""
    for index, bar in enumerate(bars):
        y = -index
        shown = min(bar.value, xmax)
        ax.barh(
            y,
            shown,
            height=0.62,
            color=_colour(bar.passed),
            hatch="//" if bar.hatched else None,
            edgecolor="white" if bar.hatched else _colour(bar.passed),
            alpha=0.9,
        )
        if bar.target is not None:
            ax.plot([bar.target, bar.target], [y - 0.42, y + 0.42], color="black", linewidth=2.2)
        ax.text(max(shown, bar.target or 0) + xmax * 0.015, y, bar.note, va="center", fontsize=8.5)
    if shared is not None:
        value, label = shared
        ax.axvline(value, color="black", linewidth=1.6, linestyle="--")
        ax.text(value, 0.75, f" {label}", fontsize=8.5, va="bottom")
    ax.set_yticks([-i for i in range(len(bars))], [b.label for b in bars], fontsize=9)
    ax.set_ylim(-len(bars) + 0.4, 0.9)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")


def _throughput(ax: Any, sections: dict[str, Any], by_id: dict[str, Check]) -> None:
    title = "Throughput as a fraction of its limit (1.0 = the limit)"
    hello = get(sections, "limits", "hello_world", "per_second")
    single = get(sections, "limits", "postgres", "single_row", "commits_per_s")
    batch = get(sections, "limits", "postgres", "batch_100", "rows_per_s")
    accept, pipeline = sections.get("accept"), sections.get("pipeline")
    notes, volume = sections.get("notifications"), sections.get("volume")
    accepted = by_id["accept_vs_hello_world"]
    keeps = by_id["pipeline_keeps_up"]
    # label, civio, limit, units, check, target, what the target says
    rows: list[tuple[str, Any, Any, str, Check | None, float | None, str]] = [
        ("accept msg/s\n÷ hello-world req/s", get(accept, "per_second"), hello,
         "msg/s of {} req/s", accepted, ACCEPT_RATIO_MIN, f"target ≥ {ACCEPT_RATIO_MIN:.2f}"),
        ("accept msg/s\n÷ PostgreSQL commits/s", get(accept, "per_second"), single,
         "msg/s of {} commits/s", None, None, ""),
        ("processed ÷ accepted\n(while accepting)", get(pipeline, "processed_per_s"),
         get(pipeline, "accepted_per_s"), "of {} msg/s", keeps, None,
         "keeps up" if keeps.passed else "backlog grows"),
        ("processed msg/s\n÷ PostgreSQL rows/s (batches)", get(pipeline, "processed_per_s"),
         batch, "msg/s of {} rows/s", None, None, ""),
        ("volume msg/s (end to end)\n÷ hello-world req/s", get(volume, "end_to_end_per_s"),
         hello, "msg/s of {} req/s", None, None, ""),
        ("emails/s\n÷ SMTP server alone", get(notes, "channels", "EMAIL", "sent_per_second"),
         get(notes, "receiver_limits", "smtp", "per_second"), "of {} emails/s", None, None, ""),
        ("pushes/s\n÷ push receiver alone", get(notes, "channels", "WEBHOOK", "sent_per_second"),
         get(notes, "receiver_limits", "push", "per_second"), "of {} req/s", None, None, ""),
    ]  # fmt: skip
    bars = []
    for label, value, limit, units, check, target, goal in rows:
        ratio = divide(value, limit)
        if ratio is None:
            continue
        head = f"{fraction(ratio)}" + (f" — {goal}" if goal else "")
        note = f"{head}\n{num(value)} {units.format(num(limit))}"
        bars.append(Bar(label, ratio, check.passed if check else None, target, note))
    if not bars:
        _empty(ax, title)
        return
    _bars(ax, title, bars, 1.0)
    ax.set_xlim(0, 1.8)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.axvline(1.0, color=GREY, linewidth=0.8, linestyle=":")


def _latency(ax: Any, sections: dict[str, Any], by_id: dict[str, Check]) -> None:
    title = "Latency: p99 (bar), p50 (dot), target (|); log scale"
    hello = get(sections, "limits", "hello_world")
    accept, half = sections.get("accept"), get(sections, "pipeline", "half_load")
    http = get(sections, "inbox", "http") or {}
    slowest, _ = worst(http, INBOX_SEARCHES)
    # label, p50, p99, target, check
    rows: list[tuple[str, Any, Any, float | None, Check | None]] = [
        ("hello-world HTTP,\n64 connections (limit)", get(hello, "p50_ms"),
         get(hello, "p99_ms"), None, None),
        ("accept HTTP,\n64 connections", get(accept, "p50_ms"), get(accept, "p99_ms"),
         ACCEPT_P99_MAX_MS, by_id["accept_p99"]),
        ("accept→PROCESSED,\nhalf load", get(half, "accept_to_processed_p50_ms"),
         get(half, "accept_to_processed_p99_ms"), PIPELINE_P99_MAX_MS,
         by_id["pipeline_p99_half_load"]),
        ("inbox page 1", get(http, "page1", "p50_ms"), get(http, "page1", "p99_ms"),
         INBOX_PAGE_P99_MAX_MS, None),
        ("inbox deep page", get(http, "deep_page", "p50_ms"), get(http, "deep_page", "p99_ms"),
         INBOX_PAGE_P99_MAX_MS, None),
        (f"inbox search, slowest\n({slowest})", get(http, slowest or "", "p50_ms"),
         get(http, slowest or "", "p99_ms"), INBOX_SEARCH_P99_MAX_MS, None),
    ]  # fmt: skip
    rows = [r for r in rows if r[2] is not None]
    if not rows:
        _empty(ax, title)
        return
    high = max(max(r[2] for r in rows), max((r[3] or 0) for r in rows))
    low = min(min((r[1] or r[2]) for r in rows), 1.0)
    for index, (_, p50, p99, target, check) in enumerate(rows):
        y = -index
        passed = check.passed if check else (None if target is None else p99 < target)
        ax.barh(y, p99, height=0.62, color=_colour(passed), alpha=0.9)
        if p50 is not None:
            ax.plot([p50], [y], marker="o", color="white", markeredgecolor="black", markersize=7)
        if target is not None:
            ax.plot([target, target], [y - 0.42, y + 0.42], color="black", linewidth=2.2)
        note = f"p50 {ms(p50)}\np99 {ms(p99)}" + (f" (< {ms(target)})" if target else "")
        ax.text(max(p99, target or 0) * 1.2, y, note, va="center", fontsize=8.5)
    ax.set_xscale("log")
    ax.set_xlim(low / 2, high * 60)
    ax.set_yticks([-i for i in range(len(rows))], [r[0] for r in rows], fontsize=9)
    ax.set_ylim(-len(rows) + 0.4, 0.9)
    ax.set_xlabel("milliseconds")
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")


def _volume(ax: Any, sections: dict[str, Any], by_id: dict[str, Check]) -> None:
    title = "1,000,000 messages through the API: wall time"
    volume = sections.get("volume")
    if not volume or not volume.get("messages"):
        _empty(ax, title)
        return
    scale = MILLION / volume["messages"]
    projected = is_projection(volume)
    accept_s = volume["accept_seconds"] * scale
    total_s, _ = volume_seconds(volume)
    assert total_s is not None
    how = f"\nprojected from {num(volume['messages'])} messages" if projected else ""
    bars = [
        Bar("all accepted\n(last answer)", accept_s / 60, None, None, minutes(accept_s) + how,
            projected),
        Bar("accepted + processed\n(none ACCEPTED left)", total_s / 60, by_id["volume_1m"].passed,
            None, minutes(total_s) + how, projected),
    ]  # fmt: skip
    xmax = max(VOLUME_MAX_S / 60, total_s / 60) * 1.1
    _bars(ax, title, bars, xmax, shared=(VOLUME_MAX_S / 60, "target < 10 min"))
    ax.set_xlim(0, xmax * 1.45)
    ax.set_xlabel("minutes")


def _memory(ax: Any, sections: dict[str, Any], by_id: dict[str, Check]) -> None:
    title = "Peak resident memory (RSS)"
    rows = [
        ("API\n(serve --no-worker)", get(sections, "memory", "rss_peak_mb", "api"), "memory_api"),
        ("worker\n(civio worker)", get(sections, "memory", "rss_peak_mb", "worker"),
         "memory_worker"),
        ("API + in-process worker\n(civio serve, volume)",
         get(sections, "volume", "rss_peak_mb", "serve"), "memory_serve"),
    ]  # fmt: skip
    bars = [
        Bar(label, value, by_id[key].passed, None, f"{num(value)} MB")
        for label, value, key in rows
        if value is not None
    ]
    if not bars:
        _empty(ax, title)
        return
    xmax = max(RSS_MAX_MB, *(b.value for b in bars)) * 1.1
    _bars(ax, title, bars, xmax, shared=(RSS_MAX_MB, f"target < {RSS_MAX_MB:.0f} MB"))
    ax.set_xlim(0, xmax * 1.3)
    ax.set_xlabel("MB, sampled every 0.5 s")
