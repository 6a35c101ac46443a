"""The one renderer of civio's ``((placeholder))`` templates.

Two slot forms, as in GOV.UK Notify: ``((name))`` is replaced by a value, and
``((flag??text))`` shows ``text`` only when ``flag`` is true. A conditional's text is plain
(no placeholder, no parentheses), so a block is either shown or not and every value a
message needs is a required one. Links are ordinary markdown around a slot:
``[text](((url_name)))``.

Rendering is strict, because its errors are the ones a sender sees: a value the template
needs and the sender did not give (missing), a value the template never uses (unknown,
usually a typo), a blank value (empty), a value of the wrong kind (a flag takes true or
false, a value a string or a number). All of them are collected before anything is
filled, so one refusal lists every problem at once.

The slots are filled in one pass over the template: a value holding ``((…))`` is text, it
is never read as a slot itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

NAME = r"[a-z][a-z0-9_]*"
PLACEHOLDER = re.compile(rf"\(\(({NAME})\)\)")
CONDITIONAL = re.compile(rf"\(\(({NAME})\?\?([^()]*)\)\)")
_ANY = re.compile(rf"\(\(({NAME})(?:\?\?([^()]*))?\)\)")


def placeholders(template: str) -> set[str]:
    """Names of the values a template needs (``((name))``)."""
    return set(PLACEHOLDER.findall(template))


def flags(template: str) -> set[str]:
    """Names of the flags a template's conditional blocks test (``((flag??text))``)."""
    return {name for name, _ in CONDITIONAL.findall(template)}


def leftover_markup(template: str) -> str | None:
    """The first ``((`` or ``))`` that is not part of a well-formed slot, with the text
    around it, if any: a typo a sender should hear about when saving the template."""
    rest = _ANY.sub("", template)
    for token in ("((", "))"):
        index = rest.find(token)
        if index >= 0:
            return rest[max(0, index - 20) : index + 20]
    return None


@dataclass(frozen=True)
class Slots:
    """What a set of texts (a template's subjects and bodies) asks for."""

    values: frozenset[str]
    flags: frozenset[str]

    @classmethod
    def of(cls, texts: Iterable[str]) -> Slots:
        values: set[str] = set()
        tested: set[str] = set()
        for text in texts:
            values |= placeholders(text)
            tested |= flags(text)
        return cls(frozenset(values), frozenset(tested))

    @property
    def names(self) -> frozenset[str]:
        return self.values | self.flags


class RenderError(ValueError):
    """The personalisation does not fit the template; every problem is listed."""

    def __init__(
        self,
        *,
        missing: Iterable[str] = (),
        unknown: Iterable[str] = (),
        empty: Iterable[str] = (),
        not_a_flag: Iterable[str] = (),
        not_a_value: Iterable[str] = (),
    ) -> None:
        self.missing = sorted(missing)
        self.unknown = sorted(unknown)
        self.empty = sorted(empty)
        self.not_a_flag = sorted(not_a_flag)
        self.not_a_value = sorted(not_a_value)
        super().__init__(self.describe())

    def __bool__(self) -> bool:
        return bool(
            self.missing or self.unknown or self.empty or self.not_a_flag or self.not_a_value
        )

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing: {', '.join(self.missing)}")
        if self.unknown:
            parts.append(f"unknown (the template does not use them): {', '.join(self.unknown)}")
        if self.empty:
            parts.append(f"empty: {', '.join(self.empty)}")
        if self.not_a_flag:
            parts.append(f"must be true or false: {', '.join(self.not_a_flag)}")
        if self.not_a_value:
            parts.append(f"must be a string or a number: {', '.join(self.not_a_value)}")
        return "; ".join(parts)


def check(slots: Slots, personalisation: Mapping[str, object]) -> None:
    """``RenderError`` listing everything wrong with ``personalisation`` for ``slots``."""
    given = set(personalisation)
    error = RenderError(
        missing=slots.names - given,
        unknown=given - slots.names,
        empty=[
            name
            for name in slots.values & given
            if isinstance(personalisation[name], str) and not str(personalisation[name]).strip()
        ],
        not_a_flag=[
            name for name in slots.flags & given if not isinstance(personalisation[name], bool)
        ],
        not_a_value=[
            name
            for name in slots.values & given
            if isinstance(personalisation[name], bool)
            or not isinstance(personalisation[name], str | int | float)
        ],
    )
    if error:
        raise error


def as_text(value: object) -> str:
    """A value as it appears in a message: text as given, a number as JSON writes it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def fill(template: str, personalisation: Mapping[str, object]) -> str:
    """``template`` with its slots filled; the personalisation must have passed ``check``."""

    def slot(match: re.Match[str]) -> str:
        name, text = match.group(1), match.group(2)
        if text is not None:
            return text if personalisation[name] is True else ""
        return as_text(personalisation[name])

    return _ANY.sub(slot, template)


def render(template: str, personalisation: Mapping[str, object]) -> str:
    """One text rendered strictly on its own: ``RenderError`` unless ``personalisation``
    gives exactly what it asks for."""
    check(Slots.of([template]), personalisation)
    return fill(template, personalisation)


def render_all(texts: Mapping[str, str], personalisation: Mapping[str, object]) -> dict[str, str]:
    """Several texts of one template (subjects and bodies of every language) rendered with
    one personalisation, checked against all of them together: a value one language uses
    is known to the others."""
    check(Slots.of(texts.values()), personalisation)
    return {key: fill(text, personalisation) for key, text in texts.items()}
