"""Rules of a service's templates: what a template may hold, who sees it, how a version is
made, and how a template becomes a message's texts.

A template belongs to the service whose key created it; any other service is told it does
not exist (404), never that it is someone else's. What a template may hold is checked in
``checks``, before anything is written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from civio.core.ids import new_ulid
from civio.core.languages import LANGUAGES
from civio.core.problems import Problem
from civio.core.types import format_timestamp
from civio.messages import cta
from civio.services import service as services
from civio.templates import render
from civio.templates.checks import check_draft, stored_variants, texts_of, variant_problems
from civio.templates.models import Template, TemplateVersion
from civio.templates.schemas import (
    Preview,
    RenderedVariant,
    TemplateDraft,
    TemplateList,
    TemplateOut,
    TemplateSummary,
    TemplateVersionList,
    TemplateVersionOut,
    VariantOut,
)

INVALID_PERSONALISATION = "Invalid personalisation"


def template_not_found(template_id: str) -> Problem:
    return Problem(404, "Template not found", f"There is no template '{template_id}'.")


# --- reading ------------------------------------------------------------------------------


def _variants_out(variants: Mapping[str, Any]) -> dict[str, VariantOut]:
    return {lang: VariantOut(**variants[lang]) for lang in LANGUAGES if lang in variants}


def _out(template: Template, version: TemplateVersion) -> TemplateOut:
    slots = render.Slots.of(texts_of(version.variants).values())
    return TemplateOut(
        id=template.id,
        key=template.key,
        name=template.name,
        version=template.latest_version,
        variants=_variants_out(version.variants),
        placeholders=sorted(slots.values),
        flags=sorted(slots.flags),
        created_at=format_timestamp(template.created_at),
        updated_at=format_timestamp(template.updated_at),
    )


async def _owned(
    session: AsyncSession, service_id: str, template_id: str, *, lock: bool = False
) -> Template:
    query = select(Template).where(Template.id == template_id, Template.service_id == service_id)
    template = await session.scalar(query.with_for_update() if lock else query)
    if template is None:
        raise template_not_found(template_id)
    return template


async def _version(session: AsyncSession, template: Template, number: int) -> TemplateVersion:
    version = await session.get(TemplateVersion, (template.id, number))
    if version is None:
        raise Problem(
            404,
            "Template version not found",
            f"Template '{template.id}' has versions 1 to {template.latest_version}.",
        )
    return version


async def get_template(session: AsyncSession, service_id: str, template_id: str) -> TemplateOut:
    template = await _owned(session, service_id, template_id)
    return _out(template, await _version(session, template, template.latest_version))


async def list_templates(
    session: AsyncSession, service_id: str, *, limit: int, offset: int
) -> TemplateList:
    """The service's own templates, oldest first (ids are time-ordered)."""
    total = await session.scalar(
        select(func.count()).select_from(Template).where(Template.service_id == service_id)
    )
    rows = (
        await session.execute(
            select(Template, TemplateVersion.variants)
            .join(
                TemplateVersion,
                (TemplateVersion.template_id == Template.id)
                & (TemplateVersion.version == Template.latest_version),
            )
            .where(Template.service_id == service_id)
            .order_by(Template.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return TemplateList(
        items=[
            TemplateSummary(
                id=template.id,
                key=template.key,
                name=template.name,
                version=template.latest_version,
                languages=[lang for lang in LANGUAGES if lang in variants],
                updated_at=format_timestamp(template.updated_at),
            )
            for template, variants in rows
        ],
        limit=limit,
        offset=offset,
        total=total or 0,
    )


async def list_versions(
    session: AsyncSession, service_id: str, template_id: str
) -> TemplateVersionList:
    template = await _owned(session, service_id, template_id)
    versions = await session.scalars(
        select(TemplateVersion)
        .where(TemplateVersion.template_id == template.id)
        .order_by(TemplateVersion.version)
    )
    return TemplateVersionList(
        template_id=template.id,
        items=[
            TemplateVersionOut(
                version=v.version,
                name=v.name,
                variants=_variants_out(v.variants),
                created_at=format_timestamp(v.created_at),
            )
            for v in versions
        ],
    )


# --- writing ------------------------------------------------------------------------------


async def _require_secure_channels(session: AsyncSession, service_id: str) -> bool:
    service, _ = await services.get_service(session, service_id)
    return service.require_secure_channels


async def create_template(
    session: AsyncSession, service_id: str, draft: TemplateDraft
) -> TemplateOut:
    """Save a new template (version 1) for ``service_id``, in the caller's transaction; the
    API and ``civio service create --from-model`` both create templates through here."""
    check_draft(draft, require_secure_channels=await _require_secure_channels(session, service_id))
    now = datetime.now(UTC)
    template = Template(
        id=new_ulid(),
        service_id=service_id,
        key=draft.key,
        name=draft.name,
        latest_version=1,
        created_at=now,
        updated_at=now,
    )
    version = TemplateVersion(
        template_id=template.id,
        version=1,
        name=draft.name,
        variants=stored_variants(draft),
        created_at=now,
    )
    async with _unique_key(session, draft.key):
        session.add(template)
        await session.flush()
        session.add(version)
        await session.flush()
    return _out(template, version)


async def update_template(
    session: AsyncSession, service_id: str, template_id: str, draft: TemplateDraft
) -> TemplateOut:
    """Save ``draft`` as the template's next version; earlier versions stay as they were.
    The key is what senders find a template by, so it never changes once set."""
    template = await _owned(session, service_id, template_id, lock=True)
    if template.key is not None and draft.key is not None and draft.key != template.key:
        raise Problem(
            409,
            "Conflict",
            f"A template's key never changes: this one is '{template.key}'.",
        )
    check_draft(draft, require_secure_channels=await _require_secure_channels(session, service_id))
    now = datetime.now(UTC)
    number = template.latest_version + 1
    version = TemplateVersion(
        template_id=template.id,
        version=number,
        name=draft.name,
        variants=stored_variants(draft),
        created_at=now,
    )
    async with _unique_key(session, draft.key):
        template.name = draft.name
        template.key = template.key or draft.key
        template.latest_version = number
        template.updated_at = now
        session.add(version)
        await session.flush()
    return _out(template, version)


@asynccontextmanager
async def _unique_key(session: AsyncSession, key: str | None) -> AsyncIterator[None]:
    """The writes inside, in a savepoint: a key another template of the service holds is a
    409 and leaves the caller's transaction usable."""
    try:
        async with session.begin_nested():
            yield
    except IntegrityError:
        raise Problem(
            409, "Conflict", f"This service already has a template with the key '{key}'."
        ) from None


# --- rendering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """A template version's variants rendered with one personalisation."""

    template_id: str
    version: int
    variants: dict[str, dict[str, str]]  # lang -> {subject, markdown}


def _render(variants: Mapping[str, Any], personalisation: Mapping[str, object]) -> dict[str, Any]:
    texts = render.render_all(texts_of(variants), personalisation)
    return {
        lang: {part: texts[f"{lang}.{part}"] for part in ("subject", "markdown")}
        for lang in LANGUAGES
        if lang in variants
    }


async def render_template(
    session: AsyncSession,
    service_id: str,
    template_id: str,
    version: int | None,
    personalisation: Mapping[str, object],
) -> Rendered:
    """Every variant of the version (the latest by default) filled with the values; 404 for
    a template that is not the service's, 400 listing every value that does not fit."""
    template = await _owned(session, service_id, template_id)
    saved = await _version(session, template, version or template.latest_version)
    try:
        variants = _render(saved.variants, personalisation)
    except render.RenderError as exc:
        raise Problem(400, INVALID_PERSONALISATION, f"personalisation: {exc}") from None
    return Rendered(template.id, saved.version, variants)


async def preview(
    session: AsyncSession,
    service_id: str,
    template_id: str,
    version: int | None,
    personalisation: Mapping[str, object] | None,
) -> Preview:
    """Every variant rendered, with what would stop each from being sent. Without values,
    each value shows as ``[name]`` and every conditional block is shown."""
    template = await _owned(session, service_id, template_id)
    saved = await _version(session, template, version or template.latest_version)
    if personalisation is None:
        slots = render.Slots.of(texts_of(saved.variants).values())
        values: dict[str, object] = {name: f"[{name}]" for name in slots.values}
        values.update(dict.fromkeys(slots.flags, True))
        variants = _render(saved.variants, values)
    else:
        try:
            variants = _render(saved.variants, personalisation)
        except render.RenderError as exc:
            raise Problem(400, INVALID_PERSONALISATION, f"personalisation: {exc}") from None
    return Preview(
        template_id=template.id,
        version=saved.version,
        sample=personalisation is None,
        variants={
            lang: RenderedVariant(
                subject=v["subject"],
                markdown=v["markdown"],
                calls_to_action=cta.calls_to_action(v["markdown"]),
                # A sample's ``[name]`` is no web address; the block's shape was checked
                # when the template was saved.
                problems=variant_problems(
                    v["subject"], v["markdown"], check_cta=personalisation is not None
                ),
            )
            for lang, v in variants.items()
        },
    )
