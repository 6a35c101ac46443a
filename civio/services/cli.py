"""``civio service …``: provision services, groups and keys."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from pydantic import ValidationError

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
from civio.services import service
from civio.services.schemas import (
    ServiceCreate,
    ServiceMetadata,
    ServiceUpdate,
    ServiceWithSubscriptionKeys,
)

app = typer.Typer(help="Provision services (senders), their groups and keys.", no_args_is_help=True)
keys_app = typer.Typer(help="Subscription keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

Group = Annotated[list[str] | None, typer.Option("--group", help="Replaces the sandbox set.")]
Recipient = Annotated[list[str] | None, typer.Option("--authorized-recipient")]
Cidr = Annotated[list[str] | None, typer.Option("--authorized-cidr")]


def _fail(exc: ValidationError) -> typer.Exit:
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        console.print(f"[red]invalid {field}:[/red] {error['msg']}")
    return typer.Exit(2)


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name")],
    organization_name: Annotated[str, typer.Option("--organization-name")],
    organization_fiscal_code: Annotated[str, typer.Option("--organization-fiscal-code")],
    department_name: Annotated[str, typer.Option("--department-name")] = "-",
    group: Group = None,
    authorized_recipient: Recipient = None,
    authorized_cidr: Cidr = None,
    max_allowed_payment_amount: Annotated[int, typer.Option("--max-allowed-payment-amount")] = 0,
    require_secure_channels: Annotated[bool, typer.Option("--require-secure-channels")] = False,
    special: Annotated[bool, typer.Option("--special")] = False,
    visible: Annotated[bool, typer.Option("--visible")] = False,
    owner_email: Annotated[str | None, typer.Option("--owner-email")] = None,
    scope: Annotated[str, typer.Option("--scope", help="NATIONAL or LOCAL")] = "NATIONAL",
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a service and print it with its two keys (shown only now)."""
    try:
        payload = ServiceCreate(
            name=name,
            organization_name=organization_name,
            organization_fiscal_code=organization_fiscal_code,
            department_name=department_name,
            groups=group,
            authorized_recipients=authorized_recipient or [],
            authorized_cidrs=authorized_cidr or [],
            max_allowed_payment_amount=max_allowed_payment_amount,
            require_secure_channels=require_secure_channels,
            special=special,
            visible=visible,
            owner_email=owner_email,
            service_metadata=ServiceMetadata.model_validate({"scope": scope}),
        )
    except ValidationError as exc:
        raise _fail(exc) from None
    settings = settings_with(database_url, data_dir)

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            return await service.create_service(
                session, payload, sandbox_fiscal_code=settings.sandbox_fiscal_code
            )

    emit(run_with_runtime(settings, work), as_json, title="service created")


@app.command("show")
def show(
    service_id: str,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print a service (never its keys)."""

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with runtime.sessions() as session:
            row, owner = await service.get_service(session, service_id)
            return service.to_io(row, owner.email)

    emit(run_with_runtime(settings_with(database_url, data_dir), work), as_json)


@app.command("update")
def update(
    service_id: str,
    name: Annotated[str | None, typer.Option("--name")] = None,
    organization_name: Annotated[str | None, typer.Option("--organization-name")] = None,
    organization_fiscal_code: Annotated[
        str | None, typer.Option("--organization-fiscal-code")
    ] = None,
    department_name: Annotated[str | None, typer.Option("--department-name")] = None,
    group: Group = None,
    authorized_recipient: Recipient = None,
    authorized_cidr: Cidr = None,
    max_allowed_payment_amount: Annotated[
        int | None, typer.Option("--max-allowed-payment-amount")
    ] = None,
    require_secure_channels: Annotated[
        bool | None, typer.Option("--require-secure-channels/--no-require-secure-channels")
    ] = None,
    special: Annotated[bool | None, typer.Option("--special/--standard")] = None,
    visible: Annotated[bool | None, typer.Option("--visible/--hidden")] = None,
    owner_email: Annotated[str | None, typer.Option("--owner-email")] = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a service; options not given keep their value. List options replace the list."""
    try:
        payload = ServiceUpdate(
            name=name,
            organization_name=organization_name,
            organization_fiscal_code=organization_fiscal_code,
            department_name=department_name,
            groups=group,
            authorized_recipients=authorized_recipient,
            authorized_cidrs=authorized_cidr,
            max_allowed_payment_amount=max_allowed_payment_amount,
            require_secure_channels=require_secure_channels,
            special=special,
            visible=visible,
            owner_email=owner_email,
        )
    except ValidationError as exc:
        raise _fail(exc) from None
    settings = settings_with(database_url, data_dir)

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            return await service.update_service(
                session, service_id, payload, sandbox_fiscal_code=settings.sandbox_fiscal_code
            )

    emit(run_with_runtime(settings, work), as_json, title="service updated")


def _change_groups(
    service_id: str, groups: list[str], grant: bool, as_json: bool, url: str | None
) -> None:
    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            return await service.change_groups(session, service_id, groups, grant=grant)

    emit(run_with_runtime(settings_with(url), work), as_json)


@app.command("grant")
def grant(
    service_id: str,
    groups: list[str],
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Add permission groups to a service."""
    _change_groups(service_id, groups, True, as_json, database_url)


@app.command("revoke")
def revoke(
    service_id: str,
    groups: list[str],
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Remove permission groups from a service."""
    _change_groups(service_id, groups, False, as_json, database_url)


@keys_app.command("regenerate")
def regenerate(
    service_id: str,
    which: Annotated[str, typer.Argument(help="primary or secondary")],
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Replace one key; the other keeps working. The new key is shown only now."""
    if which not in ("primary", "secondary"):
        console.print("[red]error:[/red] key must be 'primary' or 'secondary'")
        raise typer.Exit(2)
    key: Literal["primary", "secondary"] = "primary" if which == "primary" else "secondary"

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            return await service.regenerate_key(session, service_id, key)

    emit(run_with_runtime(settings_with(database_url), work), as_json, title="key regenerated")
