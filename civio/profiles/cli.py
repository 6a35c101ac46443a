"""``civio citizen …``: operator-made profiles, until citizen login lands."""

from __future__ import annotations

from typing import Annotated

import typer

from civio.core.cli_support import (
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    console,
    emit,
    run_with_runtime,
    settings_with,
)
from civio.core.db import transaction
from civio.core.problems import Problem
from civio.core.runtime import Runtime
from civio.core.types import is_fiscal_code
from civio.profiles.models import Profile
from civio.profiles.schemas import CitizenOut, ProfileMode
from civio.profiles.service import citizen_view, create_citizen

app = typer.Typer(help="Create and inspect citizens' profiles.", no_args_is_help=True)
MODES: tuple[ProfileMode, ...] = ("LEGACY", "AUTO", "MANUAL")


@app.command("create")
def create(
    fiscal_code: str,
    email: Annotated[str | None, typer.Option("--email", help="Stored as validated.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="LEGACY, AUTO or MANUAL")] = "AUTO",
    inbox: Annotated[bool, typer.Option("--inbox/--no-inbox")] = True,
    block: Annotated[
        list[str] | None, typer.Option("--block", help="Block the inbox for this service id.")
    ] = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create (or reset) a citizen's profile."""
    if not is_fiscal_code(fiscal_code):
        console.print(f"[red]error:[/red] {fiscal_code!r} is not a valid fiscal code (uppercase)")
        raise typer.Exit(2)
    chosen = next((m for m in MODES if m == mode.upper()), None)
    if chosen is None:
        console.print("[red]error:[/red] --mode must be LEGACY, AUTO or MANUAL")
        raise typer.Exit(2)

    async def work(runtime: Runtime) -> CitizenOut:
        async with transaction(runtime.sessions) as session:
            profile = await create_citizen(
                session,
                runtime.keyring,
                fiscal_code,
                email=email,
                mode=chosen,
                inbox=inbox,
                blocked_services=block or [],
            )
            return await citizen_view(session, runtime.keyring, profile)

    emit(run_with_runtime(settings_with(database_url, data_dir), work), as_json, title="citizen")


@app.command("show")
def show(
    fiscal_code: str,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print a citizen's profile (decrypted)."""

    async def work(runtime: Runtime) -> CitizenOut:
        async with runtime.sessions() as session:
            profile = await session.get(Profile, fiscal_code)
            if profile is None:
                raise Problem(404, "Profile not found", f"No profile for {fiscal_code}")
            return await citizen_view(session, runtime.keyring, profile)

    emit(run_with_runtime(settings_with(database_url, data_dir), work), as_json)
