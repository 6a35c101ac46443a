"""Helpers shared by the CLI commands: settings overrides, a short-lived runtime, output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from civio.core.config import Mode, Settings, with_mode
from civio.core.logging import configure_logging
from civio.core.problems import Problem
from civio.core.runtime import Runtime

T = TypeVar("T")
console = Console(stderr=True, soft_wrap=True)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="CIVIO_DATABASE_URL",
        help="External PostgreSQL; default: the embedded cluster in the data dir.",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="CIVIO_DATA_DIR", help="Data directory (default ./.civio)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def settings_and_mode(
    database_url: str | None, data_dir: Path | None = None, *, host: str | None = None
) -> tuple[Settings, Mode]:
    """Settings from the environment and the command's options, with the mode decided
    (``host``: the address a serving command binds); invalid settings exit with a message."""
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if data_dir:
        overrides["data_dir"] = data_dir
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            console.print(f"[red]error:[/red] CIVIO_{field.upper()}: {error['msg']}")
        raise typer.Exit(2) from None
    return with_mode(settings, host)


def settings_with(database_url: str | None, data_dir: Path | None = None) -> Settings:
    """``settings_and_mode`` for commands that serve nothing."""
    return settings_and_mode(database_url, data_dir)[0]


def run_with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one unit of CLI work against the database; a Problem becomes exit code 1."""
    configure_logging(settings.log_level, json=False, cache=False)

    async def main() -> T:
        runtime = Runtime.build(settings, pool_size=2)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except Problem as problem:
        console.print(f"[red]error:[/red] {problem.title}: {problem.detail}")
        raise typer.Exit(1) from None


def emit(model: BaseModel, as_json: bool, *, title: str = "") -> None:
    data = model.model_dump(exclude_none=True)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    if title:
        console.print(f"[bold]{title}[/bold]")
    for key, value in data.items():
        typer.echo(f"{key:28} {value}")
