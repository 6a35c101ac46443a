"""What a template may hold, checked when it is saved, and what a rendered variant must
fit to become a message.

Saving checks what can be checked without values: its slots are well formed, no name is
both a value and a flag, its CTA block has IO's shape, and, for a service that requires
secure channels, no subject holds a slot (a subject is what a notification or a lock
screen shows). Whether a rendered message fits IO's bounds depends on the values, so
``variant_problems`` runs when sending and in a preview.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from civio.core.problems import Problem
from civio.messages import cta
from civio.templates import render
from civio.templates.schemas import TemplateDraft

INVALID_TEMPLATE = "Invalid template"
SENSITIVE_SUBJECT = "Sensitive data never in the title"
# IO's bounds on a message (MessageContent): what a rendered variant must fit.
SUBJECT_BOUNDS = (10, 120)
MARKDOWN_BOUNDS = (80, 10_000)
# What stands for a value while a CTA block is checked at saving: the action usually is a
# slot (``iohandledlink://((url))``), so a short web address keeps the block's shape.
CTA_SAMPLE = "https://x.it"


def stored_variants(draft: TemplateDraft) -> dict[str, dict[str, Any]]:
    return {str(lang): v.model_dump() for lang, v in draft.variants.by_language().items()}


def texts_of(variants: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Every text of a template, keyed ``<lang>.<subject|markdown>``."""
    return {
        f"{lang}.{part}": variant[part]
        for lang, variant in variants.items()
        for part in ("subject", "markdown")
    }


def check_draft(draft: TemplateDraft, *, require_secure_channels: bool) -> None:
    """400 unless the draft can be saved; every problem of one kind is listed together."""
    variants = stored_variants(draft)
    texts = texts_of(variants)
    broken = [
        f"variants.{where}: '{fragment}' is neither ((name)) nor ((flag??text))"
        for where, text in texts.items()
        if (fragment := render.leftover_markup(text)) is not None
    ]
    if broken:
        raise Problem(400, INVALID_TEMPLATE, "; ".join(broken))
    slots = render.Slots.of(texts.values())
    both = sorted(slots.values & slots.flags)
    if both:
        raise Problem(
            400,
            INVALID_TEMPLATE,
            f"used both as a value and as a flag: {', '.join(both)}; give each its own name",
        )
    if require_secure_channels:
        in_subjects = [
            f"variants.{lang}.subject holds "
            + ", ".join(f"(({name}))" for name in sorted(render.Slots.of([v["subject"]]).names))
            for lang, v in variants.items()
            if render.Slots.of([v["subject"]]).names
        ]
        if in_subjects:
            raise Problem(
                400,
                SENSITIVE_SUBJECT,
                "This service requires secure channels: a subject is shown in notifications, "
                "so it must hold no placeholder. " + "; ".join(in_subjects),
            )
    samples: dict[str, object] = dict.fromkeys(slots.values, CTA_SAMPLE)
    samples.update(dict.fromkeys(slots.flags, True))
    for lang, variant in variants.items():
        try:
            cta.check_block(render.fill(variant["markdown"], samples))
        except cta.BadBlock as exc:
            raise Problem(400, INVALID_TEMPLATE, f"variants.{lang}.markdown: {exc}") from None


def variant_problems(subject: str, markdown: str, *, check_cta: bool = True) -> list[str]:
    """What would refuse a rendered variant as a message: IO's bounds and the CTA block."""
    problems = []
    low, high = SUBJECT_BOUNDS
    if not low <= len(subject) <= high:
        problems.append(f"the subject is {len(subject)} characters; IO takes {low} to {high}")
    low, high = MARKDOWN_BOUNDS
    if not low <= len(markdown) <= high:
        problems.append(f"the markdown is {len(markdown)} characters; IO takes {low} to {high}")
    if check_cta:
        try:
            cta.check_block(markdown)
        except cta.BadBlock as exc:
            problems.append(str(exc))
    return problems
