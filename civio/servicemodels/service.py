"""Rules around the shipped models: the list in one language, the language a caller asked
for, and a model's messages as template drafts for a new service."""

from __future__ import annotations

import json
from typing import Any

from civio.core.languages import DEFAULT_LANGUAGE, LANGUAGES, Language
from civio.core.problems import Problem
from civio.servicemodels import catalogue
from civio.servicemodels.schemas import (
    ModelMessage,
    ServiceModel,
    ServiceModelList,
    ServiceModelSummary,
)
from civio.services.topics import TOPICS


def get(model_id: str) -> ServiceModel:
    model = catalogue.get_model(model_id)
    if model is None:
        raise Problem(404, "Service model not found", f"There is no service model '{model_id}'")
    return model


def summaries(language: Language) -> ServiceModelList:
    items = []
    for model in catalogue.all_models().values():
        card = model.card(language)
        items.append(
            ServiceModelSummary(
                id=model.id,
                topic_id=model.topic_id,
                topic=TOPICS[model.topic_id],
                name=card.name,
                description=card.description,
                sensitive=model.require_secure_channels,
                message_count=len(model.messages),
            )
        )
    return ServiceModelList(items=items, language=language)


def negotiate(accept_language: str | None) -> Language:
    """The first of it/en/de an ``Accept-Language`` header prefers (by q, then order);
    Italian when it names none of them."""
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = next((lang for lang in LANGUAGES if lang == primary), None)
        if language is None or quality <= 0:
            continue
        if best is None or (-quality, position) < (-best[0], best[1]):
            best = (quality, position, language)
    return best[2] if best else DEFAULT_LANGUAGE


def _cta_front_matter(message: ModelMessage) -> str:
    """IO's CTA block for a message: one ``cta_1`` per language, labels quoted as JSON
    strings (valid YAML), the action shared."""
    if message.cta_action is None:
        return ""
    lines = ["---"]
    for lang in LANGUAGES:
        label = message.texts[lang].cta_label
        lines += [
            f"{lang}:",
            "  cta_1:",
            f"    text: {json.dumps(label, ensure_ascii=False)}",
            f"    action: {json.dumps(message.cta_action, ensure_ascii=False)}",
        ]
    lines.append("---")
    return "\n".join(lines) + "\n"


def markdown_of(message: ModelMessage, language: Language) -> str:
    """The message's markdown as IO takes it: the CTA front matter, then the body."""
    return _cta_front_matter(message) + message.texts[language].markdown


def template_drafts(model: ServiceModel) -> list[dict[str, Any]]:
    """The model's messages in the shape of the templates domain's ``TemplateDraft``
    (``name``, ``key``, ``variants`` by language with ``subject`` and ``markdown``), one per
    message, keyed ``<model>.<message>`` so a sender finds them by a stable name."""
    return [
        {
            "name": message.texts[DEFAULT_LANGUAGE].name,
            "key": f"{model.id}.{message.key}",
            "variants": {
                lang: {
                    "subject": message.texts[lang].subject,
                    "markdown": markdown_of(message, lang),
                }
                for lang in LANGUAGES
            },
        }
        for message in model.messages
    ]
