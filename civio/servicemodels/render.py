"""The ``((placeholder))`` syntax of the models' texts, and a minimal sample renderer.

Two forms, as in GOV.UK Notify: ``((name))`` is replaced by a value, and
``((flag??text))`` shows ``text`` only when ``flag`` is true (the reference's
"[Se previsto]" parts). A conditional's text is plain: no placeholder and no parentheses
inside it, so every value a message needs is required and a block is either shown or not.

``render_sample`` exists so the shipped models can be checked within IO's bounds; it is
deliberately small and will give way to the templates domain's renderer, which adds the
errors a sender sees (missing, unknown and empty values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NAME = r"[a-z][a-z0-9_]*"
PLACEHOLDER = re.compile(rf"\(\(({NAME})\)\)")
CONDITIONAL = re.compile(rf"\(\(({NAME})\?\?([^()]*)\)\)")
_ANY = re.compile(rf"\(\(({NAME})(?:\?\?[^()]*)?\)\)")


def placeholders(template: str) -> set[str]:
    """Names of the values a template needs (``((name))``)."""
    return set(PLACEHOLDER.findall(template))


def flags(template: str) -> set[str]:
    """Names of the flags a template's conditional blocks test (``((flag??text))``)."""
    return {name for name, _ in CONDITIONAL.findall(template)}


def leftover_markup(template: str) -> str | None:
    """The first ``((`` or ``))`` that is not part of a well-formed slot, if any."""
    rest = _ANY.sub("", template)
    for token in ("((", "))"):
        index = rest.find(token)
        if index >= 0:
            return rest[max(0, index - 20) : index + 20]
    return None


def render_sample(template: str, values: Mapping[str, str | bool]) -> str:
    """``template`` with its slots filled from ``values``; a missing value is a KeyError."""

    def conditional(match: re.Match[str]) -> str:
        return match.group(2) if values[match.group(1)] is True else ""

    def value(match: re.Match[str]) -> str:
        filled = values[match.group(1)]
        if not isinstance(filled, str):
            raise TypeError(f"{match.group(1)} needs a text value")
        return filled

    return PLACEHOLDER.sub(value, CONDITIONAL.sub(conditional, template))
