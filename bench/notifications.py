"""Notifications delivered per second to a local SMTP server and a local push gateway.

Starts an isolated embedded PostgreSQL, provisions a service and citizens (validated email
and one APNs installation each), accepts ``--messages`` messages through civio's own accept
path, then runs the real worker until every channel has an outcome. Rates come from the
``sent_at`` timestamps the delivery loop records, per channel. Both receivers are real
servers on loopback: aiosmtpd (SMTP) and an aiohttp app speaking gorush's ``/api/push``.

    .venv/bin/python bench/notifications.py [--messages 2000] [--citizens 50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import secrets
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from sqlalchemy import text

import civio.jobs  # noqa: F401 - registers every job handler
from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.embedded import embedded_database_url
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpCounter:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def fiscal_code(i: int) -> str:
    letters = "".join(chr(65 + (i // 26**k) % 26) for k in range(6))
    return f"{letters}80A01H{i % 1000:03d}Z"


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

    url = embedded_database_url(tmp)
    await upgrade_async(url)
    settings = Settings(
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
        print(f"accepting {args.messages} messages for {args.citizens} citizens …", flush=True)
        for i in range(args.messages):
            await accept_message(runtime, caller, citizens[i % len(citizens)], body)
        print("running the worker until every channel has an outcome …", flush=True)
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
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
            "messages": args.messages,
            "citizens": args.citizens,
            "worker_wall_seconds": round(wall, 2),
            "emails_received": smtp.count,
            "pushes_received": pushes["count"],
            "channels": per_channel,
        }
    finally:
        await runtime.close()
        await runner.cleanup()
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--citizens", type=int, default=50)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cn-", dir="/tmp"))
    try:
        result = asyncio.run(run(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
