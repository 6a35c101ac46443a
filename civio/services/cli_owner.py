"""``civio owner …``: sender organisations' accounts and their manage keys."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

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
from civio.core.runtime import Runtime
from civio.services import owners
from civio.services.cli import key_name
from civio.services.manage_schemas import OwnerWithManageKeys
from civio.services.schemas import Email

app = typer.Typer(help="Owners (sender organisations) and their manage keys.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage keys (the management API's credential).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("create")
def create(
    email: Annotated[str, typer.Option("--email", help="The organisation's contact address.")],
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an owner (or give an existing owner of that email its first manage keys) and
    print its id and two manage keys: they are shown only now."""
    try:
        address = TypeAdapter(Email).validate_python(email)
    except ValidationError:
        console.print("[red]error:[/red] --email is not an email address")
        raise typer.Exit(2) from None

    async def work(runtime: Runtime) -> OwnerWithManageKeys:
        async with transaction(runtime.sessions) as session:
            return await owners.create_owner(session, address)

    emit(
        run_with_runtime(settings_with(database_url, data_dir), work),
        as_json,
        title="owner created",
    )


@keys_app.command("regenerate")
def regenerate(
    owner_id: str,
    key: Annotated[str, typer.Option("--key", help="primary or secondary")] = "primary",
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Replace one manage key; the other keeps working. The new key is shown only now."""
    which = key_name(key, "--key")

    async def work(runtime: Runtime) -> OwnerWithManageKeys:
        async with transaction(runtime.sessions) as session:
            return await owners.regenerate_key(session, owner_id, which)

    emit(
        run_with_runtime(settings_with(database_url, data_dir), work),
        as_json,
        title="manage key regenerated",
    )
