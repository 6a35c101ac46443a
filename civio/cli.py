"""The ``civio`` command: serve, worker, db, service, citizen."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer
from sqlalchemy import select

from civio.core.cli_support import DatabaseUrlOption, DataDirOption, console, settings_with
from civio.core.config import Settings
from civio.core.db import database_url as database_url_of
from civio.core.db import transaction
from civio.core.logging import configure_logging
from civio.core.migrate import upgrade
from civio.core.runtime import Runtime
from civio.profiles.cli import app as citizen_app
from civio.services import service as services
from civio.services.cli import app as service_app
from civio.services.models import Service
from civio.services.schemas import ServiceCreate

app = typer.Typer(help="civio — digital-citizenship platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(service_app, name="service")
app.add_typer(citizen_app, name="citizen")

SANDBOX_SERVICE_NAME = "civio sandbox"


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrlOption = None, data_dir: DataDirOption = None) -> None:
    """Apply every pending migration."""
    upgrade(database_url_of(settings_with(database_url, data_dir)))
    console.print("[green]database is at the latest revision[/green]")


async def _sandbox_service(settings: Settings) -> tuple[str, str, bool]:
    """The dev sandbox service: created on first start; its primary key is renewed each start.

    Keys are stored only hashed, so a key can be shown only when it is generated.
    """
    runtime = Runtime.build(settings, pool_size=1)
    try:
        async with transaction(runtime.sessions) as session:
            existing = await session.scalar(
                select(Service.service_id).where(Service.service_name == SANDBOX_SERVICE_NAME)
            )
            if existing is None:
                created = await services.create_service(
                    session,
                    ServiceCreate(
                        name=SANDBOX_SERVICE_NAME,
                        organization_name="civio development",
                        organization_fiscal_code="00000000000",
                    ),
                    sandbox_fiscal_code=settings.sandbox_fiscal_code,
                )
                assert created.primary_key is not None
                return created.service_id, created.primary_key, True
            renewed = await services.regenerate_key(session, existing, "primary")
            assert renewed.primary_key is not None
            return existing, renewed.primary_key, False
    finally:
        await runtime.close()


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="In-process worker.")] = True,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="HTTP server processes, each with its own in-process worker "
            "(default CIVIO_PROCESSES, 1).",
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Start the API (and, by default, the worker) — the embedded platform with no config."""
    from civio.app import create_app
    from civio.core.serving import serve_app

    settings = settings_with(database_url, data_dir)
    configure_logging(settings.log_level, json=settings.log_json)
    upgrade(database_url_of(settings))
    base = f"http://{host}:{port}"
    console.print(f"[bold green]civio[/bold green] on {base}  ({settings.env.value})")
    console.print(f"  PA API      {base}/api/v1   (OpenAPI: {base}/api/v1/openapi.json)")
    console.print(f"  health      {base}/healthz  {base}/readyz  {base}/metrics")
    if settings.is_dev:
        service_id, key, first = asyncio.run(_sandbox_service(settings))
        console.print(f"  sandbox service {service_id}")
        console.print(f"  Ocp-Apim-Subscription-Key: {key}")
        if not first:
            console.print("  (primary key renewed at each start; keys are stored only hashed)")
        console.print(f"  sandbox fiscal code {settings.sandbox_fiscal_code}")
        console.print(
            f"  citizen test login: POST {base}/api/auth/v1/test-login "
            f'{{"username": "<fiscal code>", "password": "{settings.test_login_password}"}}'
        )
    count = processes or settings.processes
    if count == 1:
        serve_app(create_app(settings, run_worker=worker), host, port)
        return
    # Each process builds its own app from the environment; the embedded cluster stays
    # owned by this (supervising) process, and the others connect to its URL.
    os.environ.update(
        {
            "CIVIO_DATABASE_URL": database_url_of(settings),
            "CIVIO_DATA_DIR": str(settings.data_dir),
            "CIVIO_RUN_WORKER": "true" if worker else "false",
        }
    )
    console.print(f"  {count} server processes")
    serve_app("civio.app:app_from_environment", host, port, processes=count)


@app.command("worker")
def worker(database_url: DatabaseUrlOption = None, data_dir: DataDirOption = None) -> None:
    """Run the job worker alone (scale out with more of these)."""
    from civio import jobs  # noqa: F401 - registers every job handler
    from civio.core.queue import Worker

    settings = settings_with(database_url, data_dir)
    configure_logging(settings.log_level, json=settings.log_json)

    from civio.core.serving import tune_gc

    tune_gc()

    async def main() -> None:
        runtime = Runtime.build(settings)
        job_worker = Worker(runtime)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, job_worker.stop)
        try:
            await job_worker.run()
        finally:
            await runtime.close()

    asyncio.run(main())
