"""What a service model is: its card, its flags and its ideal messages, in it, en and de.

The data files are validated against these classes when they are loaded, so a malformed
or inconsistent model (a placeholder nobody knows, a language missing, sensitive data in
a title, a payment notice that does not say how much or by when) fails the tests rather
than a request. The same classes are the public API's answer for one model.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from civio.core.languages import LANGUAGES, Language
from civio.servicemodels import render
from civio.servicemodels.vocabulary import FLAGS, PLACEHOLDERS
from civio.services.topics import TOPICS

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
KEY_PATTERN = r"^[a-z0-9]+(?:_[a-z0-9]+)*$"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=64)]
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, max_length=64)]
# IO's CTA schemes (io-services-cms CTA_PREFIX_URL_SCHEMES).
CtaAction = Annotated[str, StringConstraints(pattern=r"^(iohandledlink|ioit|iosso)://\S+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Card(Strict):
    """The service card in one language: what the catalogue shows."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Text
    cta_label: Text | None = None


class MessageText(Strict):
    """One message in one language."""

    phase: Text
    name: Text
    subject: Text
    markdown: Text
    cta_label: Text | None = None


def _slots(template: str) -> set[str]:
    return render.placeholders(template) | render.flags(template)


class ModelMessage(Strict):
    """A message of the ideal service. ``cta_action`` is shared by the languages (its label
    is not); ``payment_notice`` means it is sent with a pagoPA notice (the app adds the pay
    button), ``due_date`` that it is sent with IO's ``due_date`` (the appointment or the
    deadline)."""

    key: Key
    payment_notice: bool = False
    due_date: bool = False
    cta_action: CtaAction | None = None
    texts: dict[Language, MessageText]

    def slots(self, language: Language) -> set[str]:
        """Placeholders and flags of this message in one language, CTA included."""
        text = self.texts[language]
        return _slots(text.subject) | _slots(text.markdown) | _slots(self.cta_action or "")

    @model_validator(mode="after")
    def _consistent(self) -> ModelMessage:
        missing = [lang for lang in LANGUAGES if lang not in self.texts]
        if missing:
            raise ValueError(f"message {self.key}: no text in {', '.join(missing)}")
        for lang, text in self.texts.items():
            for part, template in (("subject", text.subject), ("markdown", text.markdown)):
                broken = render.leftover_markup(template)
                if broken is not None:
                    raise ValueError(
                        f"message {self.key} ({lang}) {part}: bad slot near {broken!r}"
                    )
            if (text.cta_label is None) != (self.cta_action is None):
                raise ValueError(f"message {self.key} ({lang}): a CTA needs a label and an action")
            unknown = render.placeholders(text.subject + text.markdown) - PLACEHOLDERS.keys()
            unknown |= render.flags(text.subject + text.markdown) - FLAGS.keys()
            if unknown:
                raise ValueError(f"message {self.key} ({lang}): unknown {sorted(unknown)}")
        reference = self.slots("it")
        for lang in LANGUAGES:
            if self.slots(lang) != reference:
                raise ValueError(f"message {self.key}: {lang} does not use the same slots as it")
        if self.payment_notice and not {"importo", "data_scadenza"} <= reference:
            raise ValueError(f"message {self.key}: a payment says how much and by when")
        return self


class ServiceModel(Strict):
    """A model: the card, the flags, the ideal messages (a body may send a subset)."""

    id: Slug
    topic_id: int = Field(ge=0, le=max(TOPICS))
    require_secure_channels: bool
    cards: dict[Language, Card]
    messages: list[ModelMessage] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceModel:
        missing = [lang for lang in LANGUAGES if lang not in self.cards]
        if missing:
            raise ValueError(f"model {self.id}: no card in {', '.join(missing)}")
        keys = [message.key for message in self.messages]
        if len(set(keys)) != len(keys):
            raise ValueError(f"model {self.id}: message keys repeat")
        if self.require_secure_channels:
            # Sensitive data never in a title: a sensitive model's subjects are fixed text.
            for message in self.messages:
                for lang, text in message.texts.items():
                    if _slots(text.subject):
                        raise ValueError(
                            f"model {self.id}, message {message.key} ({lang}): "
                            "a sensitive service's subject holds no placeholder"
                        )
        return self

    def card(self, language: Language) -> Card:
        return self.cards[language]


class ServiceModelSummary(BaseModel):
    """One line of the list, in the asked language."""

    id: str
    topic_id: int
    topic: str
    name: str
    description: str
    sensitive: bool
    message_count: int


class ServiceModelList(BaseModel):
    items: list[ServiceModelSummary]
    language: Language
