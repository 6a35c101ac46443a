"""``civio service-model …``: read the shipped models (no database needed)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from civio.core.cli_support import JsonOption, console
from civio.core.languages import LANGUAGES, Language
from civio.core.problems import Problem
from civio.servicemodels import service
from civio.servicemodels.schemas import (
    ServiceModel,
)
from civio.services.topics import TOPICS

app = typer.Typer(help="The shipped service models (IO's catalogue, in civio's words).")
LanguageOption = Annotated[str, typer.Option("--lang", help="it, en or de")]


def _out() -> Console:
    """A console for the tables, made per command so it takes the terminal's width now."""
    return Console(soft_wrap=False)


def _language(value: str) -> Language:
    language = next((lang for lang in LANGUAGES if lang == value), None)
    if language is None:
        console.print("[red]error:[/red] --lang must be it, en or de")
        raise typer.Exit(2)
    return language


def _model(model_id: str) -> ServiceModel:
    try:
        return service.get(model_id)
    except Problem as problem:
        console.print(f"[red]error:[/red] {problem.title}: {problem.detail}")
        raise typer.Exit(1) from None


@app.command("list")
def list_models(lang: LanguageOption = "it", as_json: JsonOption = False) -> None:
    """Every model: id, topic, name, whether it is sensitive, its messages."""
    models = service.summaries(_language(lang))
    if as_json:
        typer.echo(json.dumps(models.model_dump()["items"], indent=2, ensure_ascii=False))
        return
    out = _out()
    table = Table("id", "topic", "name", "sensitive", "messages")
    for item in models.items:
        table.add_row(
            item.id, item.topic, item.name, "yes" if item.sensitive else "", str(item.message_count)
        )
    out.print(table)


@app.command("show")
def show(model_id: str, lang: LanguageOption = "it", as_json: JsonOption = False) -> None:
    """One model: its card, its flags and its messages in one language (JSON: all of them)."""
    language = _language(lang)
    model = _model(model_id)
    if as_json:
        typer.echo(json.dumps(model.model_dump(exclude_none=True), indent=2, ensure_ascii=False))
        return
    out = _out()
    card = model.card(language)
    out.print(
        f"[bold]{card.name}[/bold]  ({model.id}, topic {model.topic_id} {TOPICS[model.topic_id]})"
    )
    out.print(
        f"sensitive (require_secure_channels): {'yes' if model.require_secure_channels else 'no'}"
    )
    out.print(f"card button: {card.cta_label or '-'}")
    out.print(card.description)
    table = Table("key", "phase", "name", "subject", "payment", "due date", "button")
    for message in model.messages:
        text = message.texts[language]
        table.add_row(
            message.key,
            text.phase,
            text.name,
            text.subject,
            "yes" if message.payment_notice else "",
            "yes" if message.due_date else "",
            text.cta_label or "",
        )
    out.print(table)
    for message in model.messages:
        text = message.texts[language]
        out.print(Panel(text.markdown, title=f"{message.key}: {text.subject}", title_align="left"))
