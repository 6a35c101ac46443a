"""The templates API's shapes: a draft (what a sender writes), a template as read back, its
versions, and a preview.

A template's texts are bounded on their own (a 2 MB body is refused by the gateway before
any of this, with a 413); the rendered message must then fit IO's bounds (subject 10..120,
markdown 80..10000), checked when a message is sent and shown by a preview. A template may
be longer than a message because a conditional block left out shortens it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from civio.core.languages import LANGUAGES, Language
from civio.core.types import IOModel, NoControl, NoControlButLayout

MAX_NAME = 200
MAX_SUBJECT = 240
MAX_MARKDOWN = 20_000
MAX_PERSONALISATION_ENTRIES = 200
KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"

TemplateName = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=MAX_NAME), NoControl
]
TemplateKey = Annotated[str, StringConstraints(strict=True, pattern=KEY_PATTERN)]
TemplateSubject = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=MAX_SUBJECT), NoControl
]
TemplateMarkdown = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_MARKDOWN),
    NoControlButLayout,
]
# Values are checked by the renderer (kind, blank), so that every problem is listed at once.
Personalisation = Annotated[dict[str, Any], Field(max_length=MAX_PERSONALISATION_ENTRIES)]


class Variant(IOModel):
    subject: TemplateSubject
    markdown: TemplateMarkdown


class Variants(IOModel):
    """One variant per language; Italian is required (the language every citizen falls back
    to), and a language civio does not know is refused rather than silently dropped."""

    model_config = ConfigDict(extra="forbid")

    it: Variant
    en: Variant | None = None
    de: Variant | None = None

    def by_language(self) -> dict[Language, Variant]:
        present = {"it": self.it, "en": self.en, "de": self.de}
        return {lang: present[lang] for lang in LANGUAGES if present[lang] is not None}  # type: ignore[misc]


class TemplateDraft(IOModel):
    """What a sender writes: a name, an optional stable key, the variants."""

    name: TemplateName
    key: TemplateKey | None = None
    variants: Variants


class VariantOut(BaseModel):
    subject: str
    markdown: str


class TemplateOut(BaseModel):
    id: str
    key: str | None
    name: str
    version: int
    variants: dict[str, VariantOut]
    placeholders: list[str]
    flags: list[str]
    created_at: str
    updated_at: str


class TemplateSummary(BaseModel):
    id: str
    key: str | None
    name: str
    version: int
    languages: list[str]
    updated_at: str


class TemplateList(BaseModel):
    items: list[TemplateSummary]
    limit: int
    offset: int
    total: int


class TemplateVersionOut(BaseModel):
    version: int
    name: str
    variants: dict[str, VariantOut]
    created_at: str


class TemplateVersionList(BaseModel):
    template_id: str
    items: list[TemplateVersionOut]


class PreviewRequest(IOModel):
    """Values to render with; without them, each value shows its name in brackets and every
    conditional block is shown."""

    personalisation: Personalisation | None = None
    version: Annotated[int, Field(strict=True, ge=1, le=2_147_483_647)] | None = None


class RenderedVariant(BaseModel):
    subject: str
    markdown: str
    calls_to_action: dict[str, dict[str, dict[str, str]]] | None = None
    # What would refuse this variant as a message (IO's bounds, the CTA block): empty when
    # it can be sent as it is.
    problems: list[str]


class Preview(BaseModel):
    template_id: str
    version: int
    sample: bool
    variants: dict[str, RenderedVariant]


class CreatedTemplate(BaseModel):
    """What the CLI prints for each template a service model gave a new service."""

    id: str
    key: str | None
    name: str
