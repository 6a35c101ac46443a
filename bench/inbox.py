"""Citizen inbox latency on a large database: one citizen with 10,000 messages among 1,000,000.

Run with ``.venv/bin/python bench/inbox.py`` (full size) or, for a quick look,
``.venv/bin/python bench/inbox.py --messages-total 50000 --inbox-size 2000``. It:

1. starts a throw-away embedded PostgreSQL (``civio.core.embedded``, default settings) and
   migrates it with Alembic;
2. builds the data in ``--rounds`` rounds, so that the target citizen's rows end up spread
   through the heap among everyone else's, as after months of traffic. Each round:
   - *filler*: a slice of the ``messages_total - inbox_size`` PROCESSED messages (~99 per
     other citizen), written with COPY in id (time) order over random citizens: random
     ciphertext blobs of realistic size and 40 search tokens each, drawn from a per-citizen
     pool of 400 (keyed hashes repeat within one citizen's messages, never across);
   - *target*: a slice of the target's messages, sent through the real PA API
     (``POST /api/v1/messages/{fc}``) and processed by the real worker running alongside
     (as in ``civio serve``), so content, summary and search tokens come from civio's own
     code. Subjects and bodies come from a small Italian/English vocabulary, with a rare
     word in 1% of the messages, a common one in 30%, and a pair of words in 5%.
   Maintaining the GIN index row by row costs ~0.3 ms per 40-token row at this size, so
   ``ix_messages_search_tokens`` is dropped for the load and rebuilt afterwards from its
   own definition (``pg_indexes``); the other indexes are maintained throughout;
3. the citizen archives 1% of their messages (``PUT .../status``), then ``VACUUM ANALYZE``;
4. measures, through the citizen API in-process (httpx + ASGI, real bearer token from
   ``test-login``), ``--warmup`` then ``--requests`` sequential requests per scenario,
   plus ``GET /api/auth/v1/session`` as the baseline cost of the stack and the token check;
5. for each distinct SQL statement the inbox sent (captured from the engine): its latency
   alone (an asyncpg prepared statement, re-executed as the app's driver does) and
   ``EXPLAIN (ANALYZE, BUFFERS)`` as a custom plan, as PostgreSQL's plan cache chooses
   after warm-up (what a pooled connection really runs), as a generic plan, and as a
   generic plan with ``status = 'PROCESSED'`` written as a literal (the what-if of a fix);
6. unless ``--pending-messages 0``: with every index in place, sends that many messages to
   a second citizen through the same pipeline (its throughput at full size, GIN included),
   which leaves them in the GIN pending list (read from the index's metapage), and
   measures the searches again, since every search scans that list until the next vacuum.

Results go to ``bench/results/inbox.json`` and ``bench/results/inbox.md`` (a table for
``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import random
import re
import secrets
import shutil
import statistics
import string
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from common import machine_info, percentile, scratch_dir, stop_cluster
from sqlalchemy import event
from ulid import ULID

from civio.app import create_app
from civio.core.config import Environment, Settings
from civio.core.db import asyncpg_dsn, transaction
from civio.core.embedded import embedded_database_url
from civio.core.logging import configure_logging
from civio.core.migrate import upgrade
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.messages.search import indexed_terms
from civio.profiles.service import create_citizen
from civio.services.schemas import ServiceCreate
from civio.services.service import create_service

ROOT = Path(__file__).resolve().parent.parent
RESULTS_JSON = ROOT / "bench" / "results" / "inbox.json"
RESULTS_MD = ROOT / "bench" / "results" / "inbox.md"
TARGET = "RSSMRA80A01H501U"
SECOND = "VRDGPP85M12F205X"  # receives the post-vacuum messages of step 6
INBOX_PATH = "/api/communication/v1/messages"
# The inbox's SELECT, as SQLAlchemy renders it (civio.messages.inbox.list_messages).
INBOX_SQL_MARKERS = ("FROM messages LEFT OUTER JOIN services", "ORDER BY messages.id DESC")
GIN_INDEX = "ix_messages_search_tokens"
PAGE_SIZE = 100

# --------------------------------------------------------------------------- vocabulary

SENDERS = [
    ("Servizi demografici", "Comune di Milano"),
    ("Tributi locali", "Comune di Roma"),
    ("Fascicolo previdenziale", "INPS"),
    ("Dichiarazione precompilata", "Agenzia delle Entrate"),
    ("Prenotazioni sanitarie", "ASL Napoli 1 Centro"),
    ("Motorizzazione civile", "Ministero delle Infrastrutture e dei Trasporti"),
]
TOPICS = [
    "Certificato di residenza",
    "Carta d'identità elettronica",
    "Rinnovo patente",
    "Iscrizione alla mensa scolastica",
    "Avviso di appuntamento",
    "Esito della pratica",
    "Bollo auto",
    "Tessera elettorale",
    "Vaccinazione antinfluenzale",
    "Your appointment is confirmed",
    "Document ready for pickup",
    "Request approved",
]
_VOCABULARY_TEXT = """
comune ufficio anagrafe certificato residenza documento identità carta elettronica rinnovo
appuntamento sportello orario lunedì martedì venerdì mattina pomeriggio città cittadino pratica
domanda esito approvata integrazione allegato modulo firma digitale servizio scuola iscrizione
mensa asilo nido trasporto bollo auto veicolo patente verbale notifica avviso comunicazione
rimborso imposta dichiarazione redditi sanitaria tessera vaccinazione ricetta medico farmacia
ospedale visita prenotazione elettorale seggio voto permesso soggiorno passaporto questura
ritiro consegna indirizzo posta raccomandata contributo bonus famiglia figli pensione lavoro
via piazza numero codice fiscale entro giorni ore presso portare originale copia gentile
informiamo ricordiamo disponibile online sito accedi area riservata
your the office appointment renewal document identity card request approved receipt please
bring original copy available reserved from until days hours monday friday
registry pickup reminder notice confirmed new
"""
VOCABULARY = sorted(set(_VOCABULARY_TEXT.split()))
# Words whose frequency the searches rely on: none of them may be produced (as a word or a
# prefix) by the vocabulary, the topics or the senders' names (check_vocabulary).
RARE_WORD = "sfratto"  # 1% of the messages
COMMON_WORD = "pagamento"  # 30%
PAIR = ("tari", "scadenza")  # 20% and 25%: both in 5%
PAIR_QUERY = "TARI scadènza"  # case and accents are folded by the search


def special_words(index: int) -> list[str]:
    words = []
    if index % 100 == 7:
        words.append(RARE_WORD)
    if index % 10 in (0, 3, 6):
        words.append(COMMON_WORD)
    if index % 5 == 1:
        words.append(PAIR[0])
    if index % 4 == 2:
        words.append(PAIR[1])
    return words


def archived(index: int) -> bool:
    """1% of the target's messages are archived by the citizen (through the API)."""
    return index % 100 == 50


def check_vocabulary() -> None:
    background = indexed_terms([*VOCABULARY, *TOPICS, *(name for s in SENDERS for name in s)])
    for word in (RARE_WORD, COMMON_WORD, *PAIR):
        assert word not in background, f"{word!r} would also match the background vocabulary"


def new_message(index: int, rng: random.Random) -> dict[str, Any]:
    """A NewMessage body: 5-8 sentences of vocabulary with the index's special words."""
    sentences = [
        " ".join(rng.choices(VOCABULARY, k=rng.randint(7, 14))) for _ in range(rng.randint(5, 8))
    ]
    for word in special_words(index):
        sentence = rng.randrange(len(sentences))
        parts = sentences[sentence].split()
        parts.insert(rng.randrange(len(parts) + 1), word)
        sentences[sentence] = " ".join(parts)
    markdown = ". ".join(s[0].upper() + s[1:] for s in sentences) + "."
    subject = f"{rng.choice(TOPICS)}: {' '.join(rng.choices(VOCABULARY, k=2))}"
    content: dict[str, Any] = {"subject": subject[:120], "markdown": markdown}
    if index % 10 == 0:  # half of the "pagamento" messages are payment notices
        content["payment_data"] = {
            "amount": rng.randint(100, 50_000),
            "notice_number": "3" + "".join(rng.choices(string.digits, k=17)),
        }
    return {"content": content}


def fiscal_codes(count: int, rng: random.Random) -> list[str]:
    """Distinct codes matching IO's pattern (check character not computed)."""
    codes: set[str] = set()
    letters, digits = string.ascii_uppercase, string.digits
    while len(codes) < count:
        code = (
            "".join(rng.choices(letters, k=6))
            + "".join(rng.choices(digits, k=2))
            + rng.choice("ABCDEHLMPRST")
            + "".join(rng.choices(digits, k=2))
            + rng.choice(letters)
            + "".join(rng.choices(digits, k=3))
            + rng.choice(letters)
        )
        if code not in (TARGET, SECOND):
            codes.add(code)
    return sorted(codes)


# --------------------------------------------------------------------------- results


@dataclass
class Latency:
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        values = sorted(s * 1000 for s in seconds)
        return cls(
            n=len(values),
            p50_ms=round(percentile(values, 0.50), 2),
            p99_ms=round(percentile(values, 0.99), 2),
            mean_ms=round(statistics.fmean(values), 2),
            min_ms=round(values[0], 2),
            max_ms=round(values[-1], 2),
        )


@dataclass
class Scenario:
    key: str
    label: str
    params: dict[str, str]
    expected_items: int
    expect_next: bool
    sql_key: str  # scenarios sending the same SQL (enriched or not) share one plan
    http: Latency | None = None
    items: int | None = None
    has_next: bool | None = None

    @property
    def search(self) -> bool:
        return "q" in self.params


@dataclass
class Phases:
    """Wall-clock seconds of each data-generation phase (a phase may run several times)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


# --------------------------------------------------------------------------- data


@dataclass
class Sender:
    service_id: str
    owner_id: str
    key: str


@dataclass
class Filler:
    """Everyone but the target: citizens, their token pools, and the row generator."""

    citizens: list[str]
    pools: list[list[int]]  # per citizen, shuffled, with its first tokens repeated at the end
    senders: list[Sender]
    rng: random.Random
    tokens_per_message: int

    COLUMNS = (
        "fiscal_code",
        "id",
        "sender_service_id",
        "sender_owner_id",
        "created_at",
        "time_to_live",
        "feature_level_type",
        "status",
        "rejection_reason",
        "is_pending",
        "processing_attempts",
        "content_ciphertext",
        "status_at",
        "is_read",
        "is_archived",
        "summary_ciphertext",
        "search_tokens",
    )
    POOL = 400

    @classmethod
    def build(
        cls, count: int, senders: list[Sender], rng: random.Random, tokens_per_message: int
    ) -> Filler:
        citizens = fiscal_codes(max(1, round(count / 99)), rng)
        pools = []
        for _ in citizens:
            pool = [rng.getrandbits(64) - 2**63 for _ in range(cls.POOL)]
            pools.append(pool + pool[:tokens_per_message])
        return cls(citizens, pools, senders, rng, tokens_per_message)

    def rows(self, count: int) -> list[tuple[Any, ...]]:
        """``count`` PROCESSED messages in id (time) order, each to a random citizen."""
        rng, out = self.rng, []
        for _ in range(count):
            citizen = rng.randrange(len(self.citizens))
            sender = self.senders[rng.randrange(len(self.senders))]
            ulid = ULID()
            created = ulid.datetime
            # AES-GCM envelopes: 1 version byte + 12 nonce + ciphertext + 16 tag.
            content = rng.randbytes(29 + rng.randint(300, 600))
            summary = rng.randbytes(29 + rng.randint(90, 160))
            start = rng.randrange(self.POOL)
            tokens = sorted(self.pools[citizen][start : start + self.tokens_per_message])
            is_read, is_archived = rng.random() < 0.6, rng.random() < 0.05
            out.append(
                (
                    self.citizens[citizen],
                    str(ulid),
                    sender.service_id,
                    sender.owner_id,
                    created,
                    3600,
                    "STANDARD",
                    "PROCESSED",
                    None,
                    False,
                    0,
                    content,
                    created,
                    is_read,
                    is_archived,
                    summary,
                    tokens,
                )
            )
        return out


async def copy_filler(connection: asyncpg.Connection, filler: Filler, count: int) -> None:
    for start in range(0, count, 10_000):
        rows = filler.rows(min(10_000, count - start))
        await connection.copy_records_to_table("messages", records=rows, columns=filler.COLUMNS)


async def create_senders(runtime: Runtime, settings: Settings) -> list[Sender]:
    senders = []
    async with transaction(runtime.sessions) as session:
        for number, (name, organization) in enumerate(SENDERS):
            created = await create_service(
                session,
                ServiceCreate(
                    name=name,
                    organization_name=organization,
                    organization_fiscal_code=f"{80000000000 + number:011d}",
                    groups=["ApiMessageWrite", "ApiMessageRead", "ApiNoRateLimit"],
                    max_allowed_payment_amount=1_000_000,
                ),
                sandbox_fiscal_code=settings.sandbox_fiscal_code,
            )
            assert created.primary_key is not None
            senders.append(Sender(created.service_id, "", created.primary_key))
    async with runtime.engine.connect() as connection:
        for sender in senders:
            result = await connection.exec_driver_sql(
                "SELECT owner_id FROM services WHERE service_id = $1", (sender.service_id,)
            )
            sender.owner_id = result.scalar_one()
    return senders


async def create_citizen_with_inbox(runtime: Runtime, fiscal_code: str) -> None:
    async with transaction(runtime.sessions) as session:
        await create_citizen(
            session,
            runtime.keyring,
            fiscal_code,
            email=None,
            mode="AUTO",
            inbox=True,
            blocked_services=[],
        )


async def send_messages(
    client: httpx.AsyncClient,
    senders: list[Sender],
    fiscal_code: str,
    indexes: range,
    rng: random.Random,
    concurrency: int,
) -> dict[int, str]:
    """Through the real PA API: gateway, encryption under the data key, job enqueued.
    Returns the new message ids by index."""
    bodies = [(index, new_message(index, rng)) for index in indexes]
    semaphore = asyncio.Semaphore(concurrency)
    ids: dict[int, str] = {}

    async def send(index: int, body: dict[str, Any]) -> None:
        sender = senders[index % len(senders)]
        async with semaphore:
            response = await client.post(
                f"/api/v1/messages/{fiscal_code}",
                json=body,
                headers={"Ocp-Apim-Subscription-Key": sender.key},
            )
        if response.status_code != 201:
            raise RuntimeError(f"accept failed: {response.status_code} {response.text}")
        ids[index] = response.json()["id"]

    await asyncio.gather(*(send(index, body) for index, body in bodies))
    return ids


async def archive(client: httpx.AsyncClient, token: str, message_ids: list[str]) -> None:
    """The citizen archives these messages through the API (one PUT each)."""
    headers = {"Authorization": f"Bearer {token}"}
    for message_id in message_ids:
        response = await client.put(
            f"{INBOX_PATH}/{message_id}/status",
            json={"change_type": "archiving", "is_archived": True},
            headers=headers,
        )
        if response.status_code != 200:
            raise RuntimeError(f"archiving failed: {response.status_code} {response.text}")


async def wait_processed(
    connection: asyncpg.Connection, fiscal_code: str, expected: int, timeout: float = 600
) -> None:
    """Until the worker has moved every message of this citizen out of ACCEPTED."""
    deadline = time.monotonic() + timeout
    while True:
        row = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'ACCEPTED') AS accepted,"
            " count(*) FILTER (WHERE status = 'PROCESSED') AS processed"
            " FROM messages WHERE fiscal_code = $1",
            fiscal_code,
        )
        assert row is not None
        if row["accepted"] == 0:
            if row["processed"] != expected:
                raise RuntimeError(f"{row['processed']} processed, {expected} expected")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{row['accepted']} messages still ACCEPTED after {timeout} s")
        await asyncio.sleep(0.05)


async def gin_pending_list(connection: asyncpg.Connection) -> dict[str, int]:
    """Pages and heap tuples in the GIN pending list, from the index's metapage on disk.

    The core server has no function for it (pgstattuple is not in the pgserver wheel), so
    this checkpoints and reads block 0: GinMetaPageData follows the 24-byte page header
    (head, tail, tailFreeSize, nPendingPages as uint32, nPendingHeapTuples as int64).
    """
    await connection.execute("CHECKPOINT")
    page = await connection.fetchval(
        "SELECT pg_read_binary_file(pg_relation_filepath($1::regclass), 0, 8192)", GIN_INDEX
    )
    _head, _tail, _free, pages, tuples = struct.unpack_from("<IIIIq", page, 24)
    return {"pending_pages": pages, "pending_heap_tuples": tuples}


# --------------------------------------------------------------------------- plans


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def plan_verdict(plan: dict[str, Any], *, search: bool, inbox_size: int) -> dict[str, Any]:
    """What matters in one EXPLAIN (ANALYZE, FORMAT JSON) plan, and whether it is good.

    Bad: a sequential scan, a search that does not use the GIN index, or work proportional
    to the whole inbox to return one page: sorting, visiting (heap) or bitmapping (index)
    half of it or more.
    """
    nodes = list(plan_nodes(plan["Plan"]))

    def total(node: dict[str, Any], key: str) -> int:
        return int(node.get(key, 0) * node.get("Actual Loops", 1))

    indexes = sorted({n["Index Name"] for n in nodes if "Index Name" in n})
    backward = sorted(
        {
            n["Index Name"]
            for n in nodes
            if n["Node Type"] == "Index Scan"
            and n.get("Relation Name") == "messages"
            and n.get("Scan Direction") == "Backward"
        }
    )
    heap_scans = [
        n
        for n in nodes
        if n.get("Relation Name") == "messages"
        and n["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Seq Scan")
    ]
    heap_rows = sum(
        total(n, "Actual Rows")
        + total(n, "Rows Removed by Filter")
        + total(n, "Rows Removed by Index Recheck")
        for n in heap_scans
    )
    removed = sum(total(n, "Rows Removed by Filter") for n in heap_scans)
    sorts = [n for n in nodes if n["Node Type"] == "Sort"]
    sorted_rows = sum(total(child, "Actual Rows") for s in sorts for child in s.get("Plans", []))
    seq_scan = any(n["Node Type"] == "Seq Scan" for n in heap_scans)
    # A bitmap of every entry of the citizen in a b-tree, to be ANDed with the GIN hits.
    wide_bitmaps = [
        n
        for n in nodes
        if n["Node Type"] == "Bitmap Index Scan"
        and n.get("Index Name") != GIN_INDEX
        and total(n, "Actual Rows") >= inbox_size / 2
    ]

    def rows(count: int) -> str:
        return f"{count:,} row{'' if count == 1 else 's'}"

    problems, notes = [], []
    if seq_scan:
        problems.append("sequential scan of messages")
    if search and GIN_INDEX not in indexes:
        problems.append(f"search without {GIN_INDEX}")
    if sorted_rows >= inbox_size / 2:
        problems.append(f"sorts {rows(sorted_rows)} for one page")
    elif sorted_rows:
        notes.append(f"top-N sort of {rows(sorted_rows)}")
    if heap_rows >= inbox_size / 2:
        problems.append(f"visits {rows(heap_rows)} of the heap for one page")
    for node in wide_bitmaps:
        problems.append(
            f"bitmap of {rows(total(node, 'Actual Rows'))} from {node['Index Name']} "
            f"({node['Actual Total Time']:.2f} ms)"
        )
    if removed:
        notes.append(f"{rows(removed)} read and filtered out")
    if not search and not backward:
        notes.append("no backward range scan")
    elif not search and "ix_messages_inbox" not in backward:
        notes.append(f"{', '.join(backward)}, not ix_messages_inbox")
    top = plan["Plan"]
    verdict = "bad: " + "; ".join(problems) if problems else "ok"
    if notes:
        verdict += f" ({'; '.join(notes)})"
    return {
        "execution_ms": round(plan["Execution Time"], 3),
        "planning_ms": round(plan["Planning Time"], 3),
        "indexes": indexes,
        "index_scan_backward": backward,
        "uses_inbox_index": "ix_messages_inbox" in indexes,
        "uses_search_index": GIN_INDEX in indexes,
        "sort_input_rows": sorted_rows,
        "heap_rows_visited": heap_rows,
        "rows_removed_by_filter": removed,
        "seq_scan": seq_scan,
        "shared_hit_blocks": top.get("Shared Hit Blocks", 0),
        "shared_read_blocks": top.get("Shared Read Blocks", 0),
        "good": not problems,
        "verdict": verdict,
    }


def sql_literal(value: Any, type_name: str) -> str:
    if isinstance(value, list):
        text = "{" + ",".join(str(int(v)) for v in value) + "}"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = str(value)
    return "'" + text.replace("'", "''") + f"'::{type_name}"


def with_literal_status(sql: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """The same statement with ``status = 'PROCESSED'`` written as a literal (the what-if of
    a fix): a bind parameter there hides the partial indexes' predicate from generic plans."""
    match = re.search(r"messages\.status = \$(\d+)::VARCHAR", sql)
    if match is None:  # civio already writes the status as a literal
        return sql, params
    number = int(match.group(1))
    sql = sql.replace(match.group(0), "messages.status = 'PROCESSED'")

    def renumber(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return f"${n - 1 if n > number else n}"

    sql = re.sub(r"\$(\d+)", renumber, sql)
    return sql, params[: number - 1] + params[number:]


async def explain(
    connection: asyncpg.Connection,
    sql: str,
    params: tuple[Any, ...],
    *,
    search: bool,
    inbox_size: int,
    earlier: list[tuple[Any, ...]] | None = None,
    what_if: bool = True,
) -> dict[str, Any]:
    """The statement's plans: custom, the plan cache's pick after warm-up, generic, and
    (``what_if``) generic with the status written as a literal.

    ``earlier``: parameters of the scenarios measured before that send the same SQL text.
    The app's driver keeps one prepared statement per SQL text and connection, and every
    search is the same text whatever its words (the hashes are one array parameter), so
    the plan cache of a pooled connection has seen those executions too.
    """

    async def analyse(statement: str, *args: Any) -> dict[str, Any]:
        # The median of three executions for the figures, then the text form for humans.
        runs = []
        for _ in range(3):
            raw = await connection.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", *args
            )
            runs.append(json.loads(raw)[0])
        runs.sort(key=lambda run: run["Execution Time"])
        text = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *args)
        verdict = plan_verdict(runs[1], search=search, inbox_size=inbox_size)
        return {**verdict, "text": "\n".join(row[0] for row in text)}

    async def prepared(statement: str, values: tuple[Any, ...], *, generic: bool) -> dict[str, Any]:
        await connection.execute(f"PREPARE inbox_q AS {statement}")
        try:
            types = await connection.fetchval(
                "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = 'inbox_q'"
            )

            def execute(args: tuple[Any, ...]) -> str:
                literals = (sql_literal(v, t) for v, t in zip(args, types, strict=True))
                return f"EXECUTE inbox_q({', '.join(literals)})"

            if generic:
                await connection.execute("SET plan_cache_mode = force_generic_plan")
            else:
                # Five custom plans, then the cache may settle on the generic one: what a
                # pooled connection runs once its prepared statement has been used a little.
                for args in [*(earlier or []), values]:
                    for _ in range(10):
                        await connection.execute(execute(args))
            return await analyse(execute(values))
        finally:
            await connection.execute("RESET plan_cache_mode")
            await connection.execute("DEALLOCATE inbox_q")

    # Bind parameters are constants to the planner of an unnamed statement: a custom plan.
    out = {"custom": await analyse(sql, *params)}
    out["cached_after_warmup"] = await prepared(sql, params, generic=False)
    out["generic"] = await prepared(sql, params, generic=True)
    if what_if:
        literal_sql, literal_params = with_literal_status(sql, params)
        out["generic_with_literal_status"] = await prepared(
            literal_sql, literal_params, generic=True
        )
    return out


async def sql_latency(
    statement: asyncpg.prepared_stmt.PreparedStatement,
    params: tuple[Any, ...],
    warmup: int,
    n: int,
) -> Latency:
    """The statement alone, prepared once and re-executed, as the app's driver does."""
    for _ in range(warmup):
        await statement.fetch(*params)
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        await statement.fetch(*params)
        seconds.append(time.perf_counter() - start)
    return Latency.of(seconds)


# --------------------------------------------------------------------------- measuring


def scenarios(inbox_size: int, deep_position: int, deep_id: str) -> list[Scenario]:
    kept = [i for i in range(inbox_size) if not archived(i)]

    def page(key: str, label: str, params: dict[str, str], available: int) -> Scenario:
        sql_key = "page1" if key.startswith("page1") else key
        return Scenario(
            key, label, params, min(PAGE_SIZE, available), available > PAGE_SIZE, sql_key
        )

    def search(key: str, label: str, q: str, words: tuple[str, ...]) -> Scenario:
        hits = sum(set(words) <= set(special_words(i)) for i in kept)
        return page(key, label, {"page_size": str(PAGE_SIZE), "q": q}, hits)

    size = {"page_size": str(PAGE_SIZE)}
    return [
        page("page1", "page 1", size, len(kept)),
        page(
            "page1_enriched",
            "page 1, enrich_result_data=true",
            {**size, "enrich_result_data": "true"},
            len(kept),
        ),
        page(
            "deep_page",
            f"deep page (maximum_id = message #{deep_position:,})",
            {**size, "maximum_id": deep_id},
            len(kept) - deep_position - 1,
        ),
        search("search_rare", f'search rare word, 1% ("{RARE_WORD}")', RARE_WORD, (RARE_WORD,)),
        search(
            "search_common",
            f'search common word, 30% ("{COMMON_WORD}")',
            COMMON_WORD,
            (COMMON_WORD,),
        ),
        search("search_two_words", f'search two words, 5% ("{PAIR_QUERY}")', PAIR_QUERY, PAIR),
        page(
            "archived",
            f"archived, page 1 ({inbox_size - len(kept):,} archived)",
            {**size, "archived": "true"},
            inbox_size - len(kept),
        ),
    ]


async def timed_requests(
    request: Callable[[], Awaitable[httpx.Response]], warmup: int, n: int
) -> tuple[Latency, httpx.Response]:
    for _ in range(warmup):
        await request()
    seconds = []
    response = None
    for _ in range(n):
        start = time.perf_counter()
        response = await request()
        seconds.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} {response.text}")
    assert response is not None
    return Latency.of(seconds), response


async def measure_http(
    client: httpx.AsyncClient,
    token: str,
    items: list[Scenario],
    warmup: int,
    n: int,
    captured: dict[str, Any],
) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Each scenario through the API; returns the SQL (and parameters) each one sent."""
    headers = {"Authorization": f"Bearer {token}"}
    statements: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for scenario in items:
        captured.clear()

        async def request(params: dict[str, str] = scenario.params) -> httpx.Response:
            return await client.get(INBOX_PATH, params=params, headers=headers)

        scenario.http, response = await timed_requests(request, warmup, n)
        body = response.json()
        scenario.items, scenario.has_next = len(body["items"]), "next" in body
        if scenario.items != scenario.expected_items or scenario.has_next != scenario.expect_next:
            raise RuntimeError(
                f"{scenario.key}: {scenario.items} items (next: {scenario.has_next}), "
                f"expected {scenario.expected_items} (next: {scenario.expect_next})"
            )
        statements[scenario.sql_key] = (captured["sql"], tuple(captured["params"]))
        print(
            f"  {scenario.label:<52} p50 {scenario.http.p50_ms:7.2f} ms  "
            f"p99 {scenario.http.p99_ms:7.2f} ms  mean {scenario.http.mean_ms:7.2f} ms",
            flush=True,
        )
    return statements


# --------------------------------------------------------------------------- output


async def postgres_info(pg: asyncpg.Connection) -> dict[str, Any]:
    """This machine (``common.machine_info``) and the cluster's version and settings."""
    names = (
        "shared_buffers",
        "work_mem",
        "effective_cache_size",
        "random_page_cost",
        "gin_pending_list_limit",
        "plan_cache_mode",
    )
    return {
        **machine_info(),
        "postgres": await pg.fetchval("SHOW server_version"),
        "postgres_settings": {name: await pg.fetchval(f"SHOW {name}") for name in names},
    }


async def relation_sizes(pg: asyncpg.Connection) -> dict[str, str]:
    rows = await pg.fetch(
        "SELECT c.relname AS name, pg_size_pretty(pg_relation_size(c.oid)) AS size"
        " FROM pg_class c WHERE c.relname IN ('messages', 'pk_messages', 'ix_messages_inbox',"
        " 'ix_messages_search_tokens', 'ix_messages_sender_service_id_created_at')"
        " UNION ALL SELECT 'messages TOAST', pg_size_pretty(pg_relation_size(reltoastrelid))"
        " FROM pg_class WHERE relname = 'messages'"
        " UNION ALL SELECT 'messages, total', pg_size_pretty(pg_total_relation_size('messages'))"
    )
    return {row["name"]: row["size"] for row in rows}


PLAN_MODES = {
    "custom": "custom",
    "cached_after_warmup": "after warm-up",
    "generic": "generic",
    "generic_with_literal_status": "generic, status as a literal",
}


def plan_cell(plan: dict[str, Any]) -> str:
    scans = plan["index_scan_backward"] or plan["indexes"]
    where = ", ".join(f"`{name}`" for name in scans) or "-"
    if plan["index_scan_backward"]:
        where += " backward"
    return f"{where}, {plan['execution_ms']:.2f} ms: {plan['verdict']}"


def markdown(result: dict[str, Any], items: list[Scenario]) -> str:
    machine, data, config = result["machine"], result["data"], result["config"]
    settings = machine["postgres_settings"]
    lines = [
        f"Measured {result['date']} with `bench/inbox.py`: {machine['nproc']} CPUs "
        f"(`nproc`; {machine['cpu_model']}, {machine['memory_gib']} GiB), PostgreSQL "
        f"{machine['postgres']} (embedded, default settings: shared_buffers "
        f"{settings['shared_buffers']}, work_mem {settings['work_mem']}). "
        f"{data['messages_total']:,} PROCESSED messages for {data['citizens']:,} citizens "
        f"(`messages` with TOAST and indexes: {data['relation_sizes'].get('messages, total')})"
        f"; the target citizen has {data['inbox_size']:,}. Sequential requests through the "
        "ASGI app in-process (no network; the bearer token is checked on each request), "
        f"{config['requests']} per row after {config['warmup']} warm-ups. *SQL* is the "
        "inbox's statement alone, prepared and re-executed as the app's driver does: one "
        "prepared statement per SQL text, which every search shares whatever its words. "
        f"Machine {machine['busy_percent_before_measuring']:.0f}% busy just before measuring "
        f"(load average {', '.join(str(x) for x in machine['loadavg_before_measuring'])}).",
        "",
        "| request | p50 ms | p99 ms | mean ms | SQL p50 ms | SQL p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in items:
        assert scenario.http is not None
        sql = result["sql"][scenario.sql_key]
        lines.append(
            f"| {scenario.label} | {scenario.http.p50_ms:.1f} | {scenario.http.p99_ms:.1f} | "
            f"{scenario.http.mean_ms:.1f} | {sql['p50_ms']:.2f} | {sql['p99_ms']:.2f} |"
        )
    baseline = result["http_baseline_auth_only"]
    lines.append(
        f"| *baseline: {baseline['label']}* | {baseline['p50_ms']:.1f} | "
        f"{baseline['p99_ms']:.1f} | {baseline['mean_ms']:.1f} | | |"
    )
    lines += [
        "",
        "Plans (`EXPLAIN ANALYZE`, median of 3): *custom* is planned with the values; *after "
        "warm-up* is what the plan cache of a pooled connection runs once the prepared "
        "statement has been executed 10 times with these values (and, for the searches, 10 "
        "times with each earlier search's); *generic* ignores the values; the last column "
        "is a what-if with `status = 'PROCESSED'` written as a literal instead of a bind "
        "parameter. *bad* means a sequential scan, a search without the GIN index, or work "
        "in proportion to the whole inbox (sorting, visiting or bitmapping half of it).",
        "",
        "| statement | " + " | ".join(PLAN_MODES.values()) + " |",
        "|---" * (len(PLAN_MODES) + 1) + "|",
    ]
    for key, plans in result["plans"].items():
        cells = [plan_cell(plans[mode]) if mode in plans else "-" for mode in PLAN_MODES]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    pending = result.get("gin_pending_list")
    if pending:
        lines += [
            "",
            f"Searches again after {pending['messages']:,} more messages were processed (for "
            f"another citizen) since the last VACUUM: {pending['pending_pages']} pages and "
            f"{pending['pending_heap_tuples']:,} rows in the GIN pending list, which every "
            "search scans until the next vacuum:",
            "",
            "| request | p50 ms | p99 ms | mean ms | plan after warm-up |",
            "|---|---:|---:|---:|---|",
        ]
        for scenario in items:
            latency = pending["http"].get(scenario.key)
            plan = pending["plans_cached_after_warmup"].get(scenario.sql_key)
            if latency and plan:
                lines.append(
                    f"| {scenario.label} | {latency['p50_ms']:.1f} | {latency['p99_ms']:.1f} | "
                    f"{latency['mean_ms']:.1f} | {plan_cell(plan)} |"
                )
    phases, rates = result["generation_seconds"], result["rates"]
    lines += [
        "",
        f"Data generation: {data['messages_total'] - data['inbox_size']:,} filler rows "
        f"generated and COPYed in {phases['filler_copy']:.0f} s "
        f"({rates['filler_rows_per_s']:,} rows/s, "
        f"with `{GIN_INDEX}` dropped); the target's {data['inbox_size']:,} messages through "
        f"the PA API and the worker in {phases['target_accept_and_process']:.0f} s "
        f"({rates['target_processed_per_s']} messages/s, interleaved with the filler in "
        f"{config['rounds']} rounds); GIN rebuild {phases['gin_rebuild']:.0f} s; VACUUM "
        f"ANALYZE {phases['vacuum_analyze']:.0f} s; whole run "
        f"{result['total_seconds'] / 60:.1f} min.",
    ]
    if pending:
        lines[-1] += (
            f" With every index in place the pipeline processed "
            f"{pending['processed_per_s']} messages/s."
        )
    return "\n".join(lines) + "\n"


def print_table(result: dict[str, Any], items: list[Scenario]) -> None:
    print()
    print(f"{'request (ms)':<52} {'p50':>7} {'p99':>7} {'mean':>7} {'SQL p50':>8}  plan")
    for scenario in items:
        assert scenario.http is not None
        plan = result["plans"][scenario.sql_key]["cached_after_warmup"]
        print(
            f"{scenario.label:<52} {scenario.http.p50_ms:7.2f} {scenario.http.p99_ms:7.2f} "
            f"{scenario.http.mean_ms:7.2f} {result['sql'][scenario.sql_key]['p50_ms']:8.2f}  "
            f"{plan['verdict']}"
        )
    baseline = result["http_baseline_auth_only"]
    print(
        f"{'baseline: GET /api/auth/v1/session':<52} {baseline['p50_ms']:7.2f} "
        f"{baseline['p99_ms']:7.2f} {baseline['mean_ms']:7.2f}"
    )
    print(f"\ntotal run {result['total_seconds']:.0f} s")


# --------------------------------------------------------------------------- main


@dataclass
class Bench:
    args: argparse.Namespace
    settings: Settings
    runtime: Runtime
    client: httpx.AsyncClient
    pg: asyncpg.Connection  # a direct connection for bulk loading, polling and EXPLAIN
    rng: random.Random
    phases: Phases = field(default_factory=Phases)
    token: str = ""  # the target citizen's bearer token

    async def build_data(self) -> tuple[Filler, list[Sender]]:
        args, pg, phases = self.args, self.pg, self.phases
        with phases.timed("setup"):
            senders = await create_senders(self.runtime, self.settings)
            await create_citizen_with_inbox(self.runtime, TARGET)
            filler_total = args.messages_total - args.inbox_size
            filler = Filler.build(filler_total, senders, self.rng, args.filler_tokens)
            gin_definition = await pg.fetchval(
                "SELECT indexdef FROM pg_indexes WHERE indexname = $1", GIN_INDEX
            )
            await pg.execute(f"DROP INDEX {GIN_INDEX}")
        print(
            f"setup: {len(senders)} services, target {TARGET}, {len(filler.citizens):,} other "
            f"citizens, {GIN_INDEX} dropped for the load ({phases.seconds['setup']:.1f} s)",
            flush=True,
        )
        self.token = await self.login(TARGET)
        target_ids: dict[int, str] = {}
        worker = Worker(self.runtime)
        worker_task = asyncio.create_task(worker.run(), name="bench-worker")
        try:
            filler_done = target_done = 0
            for number in range(1, args.rounds + 1):
                filler_next = filler_total * number // args.rounds
                target_next = args.inbox_size * number // args.rounds
                with phases.timed("filler_copy"):
                    await copy_filler(pg, filler, filler_next - filler_done)
                with phases.timed("target_accept_and_process"):
                    with phases.timed("target_accept"):
                        target_ids |= await send_messages(
                            self.client,
                            senders,
                            TARGET,
                            range(target_done, target_next),
                            self.rng,
                            args.concurrency,
                        )
                    await wait_processed(pg, TARGET, target_next)
                filler_done, target_done = filler_next, target_next
                if worker_task.done():
                    raise RuntimeError(f"the worker stopped: {worker_task.exception()!r}")
                if number % max(1, args.rounds // 10) == 0:
                    print(
                        f"round {number}/{args.rounds}: {filler_done:,} filler rows "
                        f"({phases.seconds['filler_copy']:.0f} s), {target_done:,} target "
                        "messages accepted and processed "
                        f"({phases.seconds['target_accept_and_process']:.0f} s)",
                        flush=True,
                    )
        finally:
            worker.stop()
            await asyncio.wait_for(worker_task, timeout=30)
        to_archive = [target_ids[i] for i in range(args.inbox_size) if archived(i)]
        with phases.timed("target_archive"):
            await archive(self.client, self.token, to_archive)
        print(f"archived {len(to_archive)} target messages through the API", flush=True)
        with phases.timed("gin_rebuild"):
            await pg.execute("SET maintenance_work_mem = '1GB'")
            await pg.execute(gin_definition)
            await pg.execute("RESET maintenance_work_mem")
        print(f"{GIN_INDEX} rebuilt: {phases.seconds['gin_rebuild']:.1f} s", flush=True)
        with phases.timed("vacuum_analyze"):
            await pg.execute("VACUUM ANALYZE")
        print(f"VACUUM ANALYZE: {phases.seconds['vacuum_analyze']:.1f} s", flush=True)
        return filler, senders

    async def login(self, fiscal_code: str) -> str:
        response = await self.client.post(
            "/api/auth/v1/test-login",
            json={
                "username": fiscal_code,
                "password": self.settings.test_login_password,
                "name": "Mario",
                "family_name": "Rossi",
            },
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    async def measure_baseline(self, token: str) -> Latency:
        """The same stack with no inbox work: bearer token lookup and identity decryption."""

        async def request() -> httpx.Response:
            return await self.client.get(
                "/api/auth/v1/session", headers={"Authorization": f"Bearer {token}"}
            )

        latency, _ = await timed_requests(request, self.args.warmup, self.args.requests)
        print(
            f"  {'baseline: GET /api/auth/v1/session':<52} p50 {latency.p50_ms:7.2f} ms  "
            f"p99 {latency.p99_ms:7.2f} ms  mean {latency.mean_ms:7.2f} ms",
            flush=True,
        )
        return latency

    async def measure_sql(
        self, statements: dict[str, tuple[str, tuple[Any, ...]]], items: list[Scenario]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        sql: dict[str, Any] = {}
        plans: dict[str, Any] = {}
        search = {s.sql_key: s.search for s in items}
        # As in the app: one prepared statement per SQL text (see ``explain``).
        prepared: dict[str, asyncpg.prepared_stmt.PreparedStatement] = {}
        history: dict[str, list[tuple[Any, ...]]] = {}
        print("SQL alone (prepared, re-executed) and plans:", flush=True)
        for key, (statement, params) in statements.items():
            if statement not in prepared:
                prepared[statement] = await self.pg.prepare(statement)
            latency = await sql_latency(
                prepared[statement], params, self.args.warmup, self.args.requests
            )
            earlier = history.setdefault(statement, [])
            plans[key] = await explain(
                self.pg,
                statement,
                params,
                search=search[key],
                inbox_size=self.args.inbox_size,
                earlier=list(earlier),
            )
            earlier.append(params)
            shown = [f"<{len(p)} token hashes>" if isinstance(p, list) else p for p in params]
            sql[key] = {**asdict(latency), "statement": statement, "parameters": shown}
            cached = plans[key]["cached_after_warmup"]
            print(
                f"  {key:<17} p50 {latency.p50_ms:6.2f} ms  p99 {latency.p99_ms:6.2f} ms  "
                f"EXPLAIN custom {plans[key]['custom']['execution_ms']:.2f} / cached "
                f"{cached['execution_ms']:.2f} / generic "
                f"{plans[key]['generic']['execution_ms']:.2f} ms  "
                f"[{', '.join(cached['indexes'])}] {cached['verdict']}",
                flush=True,
            )
        return sql, plans

    async def measure_with_pending_list(
        self, senders: list[Sender], token: str, items: list[Scenario], captured: dict[str, Any]
    ) -> dict[str, Any]:
        """Messages to a second citizen through the pipeline with every index in place,
        then the searches again: until the next vacuum their GIN entries sit in the pending
        list, which every search scans whole."""
        count = self.args.pending_messages
        await create_citizen_with_inbox(self.runtime, SECOND)
        await self.pg.execute("SELECT gin_clean_pending_list($1::regclass)", GIN_INDEX)
        worker = Worker(self.runtime)
        worker_task = asyncio.create_task(worker.run(), name="bench-worker-pending")
        start = time.perf_counter()
        try:
            await send_messages(
                self.client, senders, SECOND, range(count), self.rng, self.args.concurrency
            )
            await wait_processed(self.pg, SECOND, count)
        finally:
            worker.stop()
            await asyncio.wait_for(worker_task, timeout=30)
        seconds = time.perf_counter() - start
        pending = await gin_pending_list(self.pg)
        print(
            f"{count} messages to a second citizen with every index in place: {seconds:.1f} s "
            f"({count / seconds:.0f}/s); GIN pending list {pending['pending_pages']} pages, "
            f"{pending['pending_heap_tuples']:,} rows. Searches again:",
            flush=True,
        )
        searches = [dataclasses.replace(s, http=None) for s in items if s.search]
        statements = await measure_http(
            self.client, token, searches, self.args.warmup, self.args.requests, captured
        )
        plans = {}
        earlier: list[tuple[Any, ...]] = []
        for key, (sql, params) in statements.items():
            explained = await explain(
                self.pg,
                sql,
                params,
                search=True,
                inbox_size=self.args.inbox_size,
                earlier=list(earlier),
                what_if=False,
            )
            plans[key] = explained["cached_after_warmup"]
            earlier.append(params)
        return {
            "messages": count,
            "seconds": round(seconds, 1),
            "processed_per_s": round(count / seconds),
            **pending,
            "http": {s.key: asdict(s.http) for s in searches if s.http},
            "plans_cached_after_warmup": plans,
        }

    async def run(self) -> tuple[dict[str, Any], list[Scenario]]:
        args, pg = self.args, self.pg
        filler, senders = await self.build_data()
        token = self.token
        kept = sum(not archived(i) for i in range(args.inbox_size))
        deep_position = round(kept * 0.9)
        deep_id = await pg.fetchval(
            "SELECT id FROM messages WHERE fiscal_code = $1 AND status = 'PROCESSED'"
            " AND NOT is_archived ORDER BY id DESC OFFSET $2 LIMIT 1",
            TARGET,
            deep_position,
        )
        items = scenarios(args.inbox_size, deep_position, deep_id)
        machine = await postgres_info(pg)
        machine["loadavg_before_measuring"] = [round(x, 2) for x in os.getloadavg()]
        # Other work on the machine skews latencies: say how busy it was.
        machine["busy_percent_before_measuring"] = psutil.cpu_percent(interval=2)
        captured: dict[str, Any] = {}

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if all(marker in statement for marker in INBOX_SQL_MARKERS):
                captured["sql"], captured["params"] = statement, parameters

        event.listen(self.runtime.engine.sync_engine, "before_cursor_execute", capture)
        print(f"HTTP, {args.warmup} warm-ups + {args.requests} sequential requests each:")
        statements = await measure_http(
            self.client, token, items, args.warmup, args.requests, captured
        )
        baseline = await self.measure_baseline(token)
        sql, plans = await self.measure_sql(statements, items)
        sizes = await relation_sizes(pg)
        pending = None
        if args.pending_messages:
            pending = await self.measure_with_pending_list(senders, token, items, captured)
        seconds = self.phases.seconds
        result: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine,
            "config": {
                key: getattr(args, key)
                for key in (
                    "messages_total",
                    "inbox_size",
                    "rounds",
                    "requests",
                    "warmup",
                    "concurrency",
                    "filler_tokens",
                    "pending_messages",
                    "seed",
                )
            },
            "data": {
                "messages_total": args.messages_total,
                "inbox_size": args.inbox_size,
                "citizens": len(filler.citizens) + 1,
                "filler_tokens_per_message": args.filler_tokens,
                "filler_token_pool_per_citizen": Filler.POOL,
                "relation_sizes": sizes,
                "note": (
                    f"{GIN_INDEX} was dropped during the load and rebuilt from its own "
                    "definition before VACUUM ANALYZE, so it is more compact than one grown "
                    "row by row; the other indexes were maintained throughout."
                ),
            },
            "generation_seconds": {key: round(value, 1) for key, value in seconds.items()},
            "rates": {
                "filler_rows_per_s": round(
                    (args.messages_total - args.inbox_size) / seconds["filler_copy"]
                ),
                "target_accepted_per_s": round(args.inbox_size / seconds["target_accept"]),
                "target_processed_per_s": round(
                    args.inbox_size / seconds["target_accept_and_process"]
                ),
            },
            "http": {
                s.key: {
                    "label": s.label,
                    "params": s.params,
                    "items": s.items,
                    "has_next": s.has_next,
                    **asdict(s.http),
                }
                for s in items
                if s.http
            },
            "http_baseline_auth_only": {
                "label": "GET /api/auth/v1/session (token check only, no inbox)",
                **asdict(baseline),
            },
            "sql": sql,
            "plans": plans,
        }
        if pending:
            result["gin_pending_list"] = pending
        return result, items


async def run(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Any], list[Scenario]]:
    started = time.perf_counter()
    url = embedded_database_url(tmp)
    await asyncio.to_thread(upgrade, url)
    print(f"embedded PostgreSQL in {tmp}, migrated ({time.perf_counter() - started:.1f} s)")
    settings = Settings(
        env=Environment.dev,
        test_login_password=secrets.token_urlsafe(16),
        database_url=url,
        data_dir=tmp,
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        run_worker=False,
        log_level="WARNING",
    )
    runtime = Runtime.build(settings)
    app = create_app(settings, runtime=runtime, run_worker=False)
    pg = await asyncpg.connect(asyncpg_dsn(url))
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://civio.bench") as client,
        ):
            bench = Bench(args, settings, runtime, client, pg, random.Random(args.seed))
            result, items = await bench.run()
    finally:
        await pg.close()
        await runtime.close()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    return result, items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages-total", type=int, default=1_000_000)
    parser.add_argument("--inbox-size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=100, help="interleaving of the data load")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent accepts")
    parser.add_argument("--filler-tokens", type=int, default=40, help="search tokens per filler")
    parser.add_argument(
        "--pending-messages", type=int, default=250, help="step 6's messages (0: skip it)"
    )
    parser.add_argument("--seed", type=int, default=20261125)
    args = parser.parse_args(argv)
    if not 0 < args.inbox_size < args.messages_total:
        parser.error("need 0 < --inbox-size < --messages-total")
    if args.inbox_size < 1000:
        parser.error("--inbox-size must be at least 1000 (the rare word is in 1%)")
    return args


def measure(args: argparse.Namespace) -> tuple[dict[str, Any], list[Scenario]]:
    """One run on a throw-away embedded cluster, always cleaned up."""
    check_vocabulary()
    configure_logging("WARNING")
    # A short path: the server's Unix socket lives in the data directory.
    tmp = scratch_dir("inbox")
    try:
        return asyncio.run(run(args, tmp))
    finally:
        stop_cluster(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    result, items = measure(parse_args())
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    RESULTS_MD.write_text(markdown(result, items))
    print_table(result, items)
    print(f"wrote {RESULTS_JSON.relative_to(ROOT)} and {RESULTS_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
