"""``civio service …``: provision services, groups and keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError

from civio.callbacks.schemas import CallbackEventList, CallbackStatus
from civio.callbacks.service import CallbackPolicy, recent_events
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
from civio.core.languages import DEFAULT_LANGUAGE
from civio.core.problems import Problem
from civio.core.runtime import Runtime
from civio.servicemodels import service as service_models
from civio.servicemodels.schemas import ServiceModel
from civio.services import manage_service, service
from civio.services.manage_schemas import CmsServiceLifecycle
from civio.services.schemas import (
    ServiceCreate,
    ServiceMetadata,
    ServiceUpdate,
    ServiceWithSubscriptionKeys,
)
from civio.templates import service as templates
from civio.templates.schemas import CreatedTemplate, TemplateDraft


class ServiceWithTemplates(ServiceWithSubscriptionKeys):
    """A service created from a model, with the templates its messages became."""

    templates: list[CreatedTemplate]


app = typer.Typer(help="Provision services (senders), their groups and keys.", no_args_is_help=True)
keys_app = typer.Typer(help="Subscription keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
callback_secret_app = typer.Typer(help="The callback signing secret.", no_args_is_help=True)
app.add_typer(callback_secret_app, name="callback-secret")
review_app = typer.Typer(
    help="The operator's review of submitted services (the management API).",
    no_args_is_help=True,
)
app.add_typer(review_app, name="review")

Group = Annotated[list[str] | None, typer.Option("--group", help="Replaces the sandbox set.")]
Recipient = Annotated[list[str] | None, typer.Option("--authorized-recipient")]
Cidr = Annotated[list[str] | None, typer.Option("--authorized-cidr")]
CallbackUrlOption = Annotated[
    str | None,
    typer.Option(
        "--callback-url",
        help="POST signed status events here (https in production); prints a new secret.",
    ),
]


def _model(model_id: str) -> ServiceModel:
    try:
        return service_models.get(model_id)
    except Problem as problem:
        console.print(f"[red]error:[/red] {problem.title}: {problem.detail}")
        raise typer.Exit(2) from None


def _fail(exc: ValidationError) -> typer.Exit:
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        console.print(f"[red]invalid {field}:[/red] {error['msg']}")
    return typer.Exit(2)


@app.command("create")
def create(
    organization_name: Annotated[str, typer.Option("--organization-name")],
    organization_fiscal_code: Annotated[str, typer.Option("--organization-fiscal-code")],
    name: Annotated[
        str | None, typer.Option("--name", help="Required unless --from-model gives it.")
    ] = None,
    from_model: Annotated[
        str | None,
        typer.Option(
            "--from-model",
            help="A service model's id (civio service-model list): its card, its flags "
            "and its messages as the service's templates.",
        ),
    ] = None,
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
    callback_url: CallbackUrlOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a service and print it with its two keys and callback secret (shown only now).

    With ``--from-model`` the model gives the name (unless ``--name``), the description and
    topic in the metadata, and ``require_secure_channels`` when the model is sensitive.
    """
    model = _model(from_model) if from_model is not None else None
    metadata: dict[str, Any] = {"scope": scope}
    if model is not None:
        card = model.card(DEFAULT_LANGUAGE)
        name = name or card.name
        metadata |= {"description": card.description, "topic_id": model.topic_id}
        require_secure_channels = require_secure_channels or model.require_secure_channels
    if name is None:
        console.print("[red]error:[/red] --name is required (or --from-model)")
        raise typer.Exit(2)
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
            service_metadata=ServiceMetadata.model_validate(metadata),
            callback_url=callback_url,
        )
    except ValidationError as exc:
        raise _fail(exc) from None
    settings = settings_with(database_url, data_dir)
    drafts = service_models.template_drafts(model) if model is not None else []

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            created = await service.create_service(
                session,
                payload,
                sandbox_fiscal_code=settings.sandbox_fiscal_code,
                callback_policy=CallbackPolicy.of(runtime),
                keyring=runtime.keyring,
            )
            if model is None:
                return created
            # The model's messages become the service's templates, in this transaction.
            made = [
                await templates.create_template(
                    session, created.service_id, TemplateDraft.model_validate(draft)
                )
                for draft in drafts
            ]
            return ServiceWithTemplates(
                **created.model_dump(),
                templates=[CreatedTemplate(id=t.id, key=t.key, name=t.name) for t in made],
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
    callback_url: CallbackUrlOption = None,
    no_callback: Annotated[
        bool, typer.Option("--no-callback", help="Remove the callback URL and its secret.")
    ] = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Change a service; options not given keep their value. List options replace the list."""
    if callback_url is not None and no_callback:
        console.print("[red]error:[/red] --callback-url and --no-callback exclude each other")
        raise typer.Exit(2)
    # Only a given option reaches the payload: an explicit None means "remove".
    callback: dict[str, Any] = {}
    if callback_url is not None or no_callback:
        callback["callback_url"] = callback_url
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
            **callback,
        )
    except ValidationError as exc:
        raise _fail(exc) from None
    settings = settings_with(database_url, data_dir)

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            return await service.update_service(
                session,
                service_id,
                payload,
                sandbox_fiscal_code=settings.sandbox_fiscal_code,
                callback_policy=CallbackPolicy.of(runtime),
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


def key_name(value: str, what: str) -> service.KeyName:
    """``primary`` or ``secondary`` from the command line; exit 2 naming ``what`` otherwise."""
    if value == "primary":
        return "primary"
    if value == "secondary":
        return "secondary"
    console.print(f"[red]error:[/red] {what} must be 'primary' or 'secondary'")
    raise typer.Exit(2)


@keys_app.command("regenerate")
def regenerate(
    service_id: str,
    which: Annotated[str, typer.Argument(help="primary or secondary")],
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Replace one key; the other keeps working. The new key is shown only now."""
    key = key_name(which, "key")

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            return await service.regenerate_key(session, service_id, key, runtime.keyring)

    emit(run_with_runtime(settings_with(database_url), work), as_json, title="key regenerated")


@callback_secret_app.command("regenerate")
def regenerate_callback_secret(
    service_id: str,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Replace the callback signing secret at once. The new secret is shown only now."""

    async def work(runtime: Runtime) -> ServiceWithSubscriptionKeys:
        async with transaction(runtime.sessions) as session:
            return await service.regenerate_callback_secret(
                session, service_id, CallbackPolicy.of(runtime)
            )

    emit(
        run_with_runtime(settings_with(database_url, data_dir), work),
        as_json,
        title="callback secret regenerated",
    )


STATUSES: tuple[CallbackStatus, ...] = ("PENDING", "DELIVERED", "FAILED")


@app.command("callbacks")
def callbacks(
    service_id: str,
    status: Annotated[
        str | None, typer.Option("--status", help="PENDING, DELIVERED or FAILED")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List the service's recent callback events (newest first) and their outcome."""
    chosen: CallbackStatus | None = None
    if status is not None:
        chosen = next((s for s in STATUSES if s == status.upper()), None)
        if chosen is None:
            console.print("[red]error:[/red] --status must be PENDING, DELIVERED or FAILED")
            raise typer.Exit(2)

    async def work(runtime: Runtime) -> CallbackEventList:
        async with runtime.sessions() as session:
            await service.get_service(session, service_id)
            return await recent_events(session, service_id, status=chosen, limit=limit)

    events = run_with_runtime(settings_with(database_url, data_dir), work)
    if as_json:
        typer.echo(json.dumps(events.model_dump(exclude_none=True)["items"], indent=2))
        return
    if not events.items:
        console.print("no callback events")
    for event in events.items:
        outcome = event.payload.get("status", "")
        http = event.last_response_status if event.last_response_status is not None else "-"
        line = (
            f"{event.id:>10}  {event.status:9}  attempts={event.attempts}  http={http}  "
            f"{event.type} {outcome}  message={event.message_id}  {event.created_at}"
        )
        if event.last_error:
            line += f"  error={event.last_error}"
        typer.echo(line)


ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why: shown to the owner in status and history.")
]


def _decide(
    service_id: str,
    verdict: Literal["approve", "reject"],
    reason: str | None,
    as_json: bool,
    database_url: str | None,
    data_dir: Path | None,
) -> None:
    if reason is not None and not reason.strip():
        console.print("[red]error:[/red] --reason must not be empty")
        raise typer.Exit(2)
    settings = settings_with(database_url, data_dir)

    async def work(runtime: Runtime) -> CmsServiceLifecycle:
        platform = manage_service.Platform.of(runtime)
        async with transaction(runtime.sessions) as session:
            return await manage_service.decide(
                session, service_id, verdict, platform, reason=reason
            )

    title = "service approved" if verdict == "approve" else "service rejected"
    emit(run_with_runtime(settings, work), as_json, title=title)


@review_app.command("approve")
def approve(
    service_id: str,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Approve a submitted service: it is released, and published if its owner asked for
    auto_publish; its payment maximum becomes CIVIO_MAX_ALLOWED_PAYMENT_AMOUNT."""
    _decide(service_id, "approve", reason, as_json, database_url, data_dir)


@review_app.command("reject")
def reject(
    service_id: str,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Reject a submitted service; the owner edits it before asking for review again."""
    _decide(service_id, "reject", reason, as_json, database_url, data_dir)
