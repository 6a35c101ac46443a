"""The ``civio`` command: serve, worker, db, service, owner, service-model, citizen."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer
from sqlalchemy import select, text

from civio.auth.dev_login import dev_login_password
from civio.core.cli_support import (
    DatabaseUrlOption,
    DataDirOption,
    console,
    settings_and_mode,
    settings_with,
)
from civio.core.config import Settings, dev_beyond_loopback
from civio.core.db import database_url as database_url_of
from civio.core.db import transaction
from civio.core.embedded import exit_on_sigterm
from civio.core.logging import configure_logging
from civio.core.migrate import upgrade
from civio.core.runtime import Runtime
from civio.profiles.cli import app as citizen_app
from civio.servicemodels.cli import app as service_model_app
from civio.services import service as services
from civio.services.cli import app as service_app
from civio.services.cli_owner import app as owner_app
from civio.services.models import Service
from civio.services.schemas import ServiceCreate

app = typer.Typer(help="civio — digital-citizenship platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(service_app, name="service")
app.add_typer(owner_app, name="owner")
app.add_typer(service_model_app, name="service-model")
app.add_typer(citizen_app, name="citizen")

SANDBOX_SERVICE_NAME = "civio sandbox"


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrlOption = None, data_dir: DataDirOption = None) -> None:
    """Apply every pending migration."""
    upgrade(database_url_of(settings_with(database_url, data_dir)))
    console.print("[green]database is at the latest revision[/green]")


async def _sandbox_service(settings: Settings) -> tuple[str, str | None]:
    """The dev sandbox service and, only when this call created it, its primary key.

    Keys are stored only hashed, so a key can be shown only when it is generated; a later
    start (or a second instance on the same database) never renews a key that another
    start printed and someone may be using. The advisory lock makes concurrent first
    starts create one service, not two.
    """
    runtime = Runtime.build(settings, pool_size=1)
    try:
        async with transaction(runtime.sessions) as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                {"name": SANDBOX_SERVICE_NAME},
            )
            existing = await session.scalar(
                select(Service.service_id).where(Service.service_name == SANDBOX_SERVICE_NAME)
            )
            if existing is not None:
                return existing, None
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
            return created.service_id, created.primary_key
    finally:
        await runtime.close()


def _print_dev_banner(settings: Settings, base: str) -> None:
    """What a developer needs to try the platform; each secret appears only in the banner
    of the start that generated it, never in a log."""
    service_id, key = asyncio.run(_sandbox_service(settings))
    console.print(f"  sandbox service {service_id}")
    if key is not None:
        console.print(f"  Ocp-Apim-Subscription-Key: {key}")
        console.print("  (shown once: keys are stored only hashed)")
    else:
        console.print(
            "  its key was shown when it was created; for a new one: "
            f"civio service keys regenerate {service_id} primary"
        )
    console.print(f"  sandbox fiscal code {settings.sandbox_fiscal_code}")
    password = dev_login_password(settings)
    console.print(
        f'  citizen test login: POST {base}/api/auth/v1/test-login {{"username": '
        '"<fiscal code>", "password": …}'
    )
    if password.created:
        console.print(
            f"  test-login password (shown once, kept in {password.path}): {password.value}"
        )
    elif password.path is not None:
        console.print(f"  test-login password: in {password.path}")
    else:
        console.print("  test-login password: CIVIO_TEST_LOGIN_PASSWORD")


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
    """Start the API (and, by default, the worker) — the embedded platform with no config.

    Dev mode (test login, generated keys) only when asked for or obviously local; see
    ``civio.core.config.decide_mode``.
    """
    from civio.app import create_app
    from civio.core.serving import serve_app

    settings, mode = settings_and_mode(database_url, data_dir, host=host)
    if not settings.is_dev and not settings.master_key:
        console.print(
            f"[red]error:[/red] production mode ({mode.reason}) needs CIVIO_MASTER_KEY "
            "(base64 of 32 random bytes: python3 -c 'import base64, secrets; "
            "print(base64.b64encode(secrets.token_bytes(32)).decode())'); "
            "for a local trial use the embedded default on 127.0.0.1, or CIVIO_ENV=dev."
        )
        raise typer.Exit(2)
    configure_logging(settings.log_level, json=settings.log_json)
    upgrade(database_url_of(settings))
    base = f"http://{host}:{port}"
    console.print(f"[bold green]civio[/bold green] on {base}  ({mode.env.value}: {mode.reason})")
    if dev_beyond_loopback(settings, host):
        console.print(
            "  [bold red]warning:[/bold red] dev mode beyond this machine: anyone who reaches "
            "this address can log in as any citizen"
        )
    console.print(f"  PA API      {base}/api/v1   (OpenAPI: {base}/api/v1/openapi.json)")
    console.print(f"  health      {base}/healthz  {base}/readyz  {base}/metrics")
    if settings.is_dev:
        _print_dev_banner(settings, base)
    exit_on_sigterm()
    count = processes or settings.processes
    if count == 1:
        serve_app(create_app(settings, run_worker=worker), host, port)
        return
    # Each process builds its own app from the environment; the embedded cluster stays
    # owned by this (supervising) process, and the others connect to its URL. The mode is
    # passed explicitly: an external URL alone would mean production to them.
    assert settings.env is not None
    os.environ.update(
        {
            "CIVIO_ENV": settings.env.value,
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
