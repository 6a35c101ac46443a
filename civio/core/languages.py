"""The languages civio writes in (Italian, English, German), and the one rule that picks
one for a citizen.

A citizen's profile lists IO locales (``it_IT``, ``en_GB``, ``de_DE``, ``es_ES``,
``fr_FR``) in order of preference; mail, push texts and templated messages all answer in
the first of them civio has, and in Italian, the platform's own language, otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

Language = Literal["it", "en", "de"]
LANGUAGES: tuple[Language, ...] = ("it", "en", "de")
DEFAULT_LANGUAGE: Language = "it"
LANGUAGE_OF_LOCALE: dict[str, Language] = {"it_IT": "it", "en_GB": "en", "de_DE": "de"}


def citizen_language(
    preferred_languages: Sequence[str] | None, available: Iterable[str] = LANGUAGES
) -> str:
    """The first of the citizen's preferred languages among ``available``; Italian otherwise."""
    have = set(available)
    for locale in preferred_languages or ():
        language = LANGUAGE_OF_LOCALE.get(locale)
        if language in have:
            return language
    return DEFAULT_LANGUAGE
