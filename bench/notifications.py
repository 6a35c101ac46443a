"""Notifications delivered per second to a local SMTP server and a local push gateway.

Starts an isolated embedded PostgreSQL, provisions a service and citizens (validated email
and one APNs installation each), accepts ``--messages`` messages through civio's own accept
path, then runs the real worker until every channel has an outcome. Rates come from the
``sent_at`` timestamps the delivery loop records, per channel. Both receivers are real
servers on loopback: aiosmtpd (SMTP) and an aiohttp app speaking gorush's ``/api/push``.
Before civio's run, the same receivers are loaded without civio (``--limit-duration`` s
each): 8 persistent SMTP sessions from aiosmtplib, and wrk POSTing single-token pushes from
64 connections. Those rates are the limits civio's emails/s and pushes/s are compared with.

    .venv/bin/python bench/notifications.py [--messages 2000] [--citizens 50]

``bench/run.py`` runs this as its ``notifications`` section.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import shutil
import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from aiohttp import web
from aiosmtpd.controller import Controller
from common import Generator, Target, free_port, log, machine_info, scratch_dir, stop_cluster
from sqlalchemy import text

import civio.jobs  # noqa: F401 - registers every job handler
from civio.core.config import Environment, Settings
from civio.core.db import transaction
from civio.core.embedded import embedded_database_url
from civio.core.logging import configure_logging
from civio.core.migrate import upgrade_async
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.messages.schemas import NewMessage
from civio.messages.service import accept_message
from civio.notifications.push.installations import InstallationBody, register_installation
from civio.profiles.service import create_citizen
from civio.services import service as services
from civio.services.gateway import Caller, CallerService
from civio.services.models import Owner, Service
from civio.services.schemas import ServiceCreate

RESULTS = Path(__file__).resolve().parent / "results" / "notifications.json"


class SmtpCounter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def fiscal_code(i: int) -> str:
    letters = "".join(chr(65 + (i // 26**k) % 26) for k in range(6))
    return f"{letters}80A01H{i % 1000:03d}Z"


PUSH_BODY = json.dumps(
    {"notifications": [{"tokens": ["0" * 64], "platform": 1, "message": "Nuovo messaggio"}]}
)


async def smtp_limit(port: int, seconds: float, sessions: int = 8) -> dict[str, Any]:
    """Emails/s the local SMTP server takes from persistent aiosmtplib sessions."""
    message = EmailMessage()
    message["From"], message["To"] = "bench@example.org", "citizen@example.org"
    message["Subject"] = "Hai un nuovo messaggio"
    message.set_content("Gentile cittadino, è disponibile un nuovo messaggio. " * 8)
    sent = 0
    deadline = time.perf_counter() + seconds

    async def session() -> None:
        nonlocal sent
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
            while time.perf_counter() < deadline:
                await client.send_message(message)
                sent += 1

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(sessions)))
    elapsed = time.perf_counter() - started
    return {
        "client": f"aiosmtplib, {sessions} persistent sessions",
        "sent": sent,
        "per_second": round(sent / elapsed, 1),
    }


async def push_limit(port: int, seconds: float, work_dir: Path) -> dict[str, Any]:
    """Pushes/s the local gateway takes from wrk (64 connections, one token per request)."""
    generator = Generator(f"http://127.0.0.1:{port}", "", work_dir)
    target = Target("POST", ["/api/push"], 200, PUSH_BODY)
    if generator.wrk is None:
        return {"client": "none (wrk not on PATH)", "per_second": None}
    load = await generator.closed_loop(target, 64, seconds)
    return {"client": load.generator, **load.summary()}


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    smtp = SmtpCounter()
    smtp_port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    pushes = {"count": 0}

    async def gateway(request: web.Request) -> web.Response:
        body = await request.json()
        pushes["count"] += sum(len(n["tokens"]) for n in body["notifications"])
        return web.json_response({"counts": len(body["notifications"]), "success": "ok"})

    app = web.Application()
    app.router.add_post("/api/push", gateway)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    push_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", push_port).start()
    limits: dict[str, Any] = {}
    if args.limit_duration > 0:
        log(f"notifications: receivers' limits without civio ({args.limit_duration:g} s each)")
        limits["smtp"] = await smtp_limit(smtp_port, args.limit_duration)
        limits["push"] = await push_limit(push_port, args.limit_duration, tmp)
        log(
            f"notifications: SMTP server {limits['smtp']['per_second']:,.0f} emails/s, push "
            f"receiver {limits['push']['per_second'] or 0:,.0f} pushes/s"
        )
        smtp.count, pushes["count"] = 0, 0

    url = embedded_database_url(tmp)
    await upgrade_async(url)
    settings = Settings(
        env=Environment.dev,
        database_url=url,
        data_dir=tmp,
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        push_gateway_url=f"http://127.0.0.1:{push_port}/api/push",
        log_level="WARNING",
    )
    runtime = Runtime.build(settings)
    try:
        async with transaction(runtime.sessions) as session:
            created = await services.create_service(
                session,
                ServiceCreate(
                    name="Bench",
                    organization_name="Bench",
                    organization_fiscal_code="12345678901",
                    groups=["ApiMessageWrite", "ApiNoRateLimit"],
                ),
                sandbox_fiscal_code=settings.sandbox_fiscal_code,
            )
            citizens = [fiscal_code(i) for i in range(args.citizens)]
            for i, fc in enumerate(citizens):
                await create_citizen(
                    session,
                    runtime.keyring,
                    fc,
                    email=f"citizen{i}@example.org",
                    mode="AUTO",
                    inbox=True,
                    blocked_services=[],
                )
                await register_installation(
                    session,
                    runtime.keyring,
                    fiscal_code=fc,
                    session_token_hash=secrets.token_bytes(32),
                    installation_id=f"device-{i}",
                    body=InstallationBody.model_validate(
                        {"platform": "apns", "pushChannel": secrets.token_hex(32)}
                    ),
                )
        async with runtime.sessions() as session:
            service = await session.get_one(Service, created.service_id)
            owner = await session.get_one(Owner, service.owner_id)
        caller = Caller(CallerService.of(service, owner), client_ip=None)
        body = NewMessage.model_validate(
            {
                "content": {
                    "subject": "Avviso di pagamento TARI",
                    "markdown": "Gentile cittadino, è disponibile l'avviso di pagamento. " * 4,
                }
            }
        )
        log(f"notifications: accepting {args.messages:,} messages for {args.citizens} citizens")
        for i in range(args.messages):
            await accept_message(runtime, caller, citizens[i % len(citizens)], body)
        log("notifications: running the worker until every channel has an outcome")
        started = time.perf_counter()
        await Worker(runtime).run(drain=True)
        wall = time.perf_counter() - started
        async with runtime.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text(
                        "SELECT channel, status, count(*), min(sent_at), max(sent_at) "
                        "FROM notification_channels GROUP BY channel, status"
                    )
                )
            ).all()
        per_channel: dict[str, Any] = {}
        for channel, status, count, first, last in rows:
            entry = per_channel.setdefault(channel, {"statuses": {}})
            entry["statuses"][status or "PENDING"] = count
            if status == "SENT" and first and last:
                span = max((last - first).total_seconds(), 1e-3)
                entry["sent_per_second"] = round(count / span, 1)
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": args.messages,
            "citizens": args.citizens,
            "worker_wall_seconds": round(wall, 2),
            "emails_received": smtp.count,
            "pushes_received": pushes["count"],
            "channels": per_channel,
            "receiver_limits": limits,
        }
    finally:
        await runtime.close()
        await runner.cleanup()
        controller.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--citizens", type=int, default=50)
    parser.add_argument(
        "--limit-duration", type=float, default=5, help="receivers' limits, s each (0: skip)"
    )
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run on a throw-away embedded cluster, always cleaned up."""
    configure_logging("WARNING")  # the worker logs every delivery at INFO
    tmp = scratch_dir("notifications")
    try:
        return asyncio.run(run(args, tmp))
    finally:
        stop_cluster(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    result = measure(parse_args())
    result["machine"] = machine_info()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
