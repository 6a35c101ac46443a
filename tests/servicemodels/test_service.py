"""A model's messages as template drafts, and the language a caller prefers."""

from __future__ import annotations

import pytest
import yaml

from civio.servicemodels import catalogue
from civio.servicemodels.service import negotiate, template_drafts


def test_template_drafts_have_the_templates_domains_shape() -> None:
    elezioni = catalogue.get_model("elezioni")
    assert elezioni is not None
    drafts = template_drafts(elezioni)
    assert [d["key"] for d in drafts] == [f"elezioni.{m.key}" for m in elezioni.messages]
    for draft, message in zip(drafts, elezioni.messages, strict=True):
        assert set(draft) == {"name", "key", "variants"}
        assert draft["name"] == message.texts["it"].name
        assert set(draft["variants"]) == {"it", "en", "de"}
        for lang, variant in draft["variants"].items():
            assert set(variant) == {"subject", "markdown"}
            assert variant["subject"] == message.texts[lang].subject
            assert variant["markdown"].endswith(message.texts[lang].markdown)


def test_a_draft_with_a_cta_starts_with_ios_front_matter() -> None:
    elezioni = catalogue.get_model("elezioni")
    assert elezioni is not None
    first, *_, appointment = template_drafts(elezioni)
    assert not first["variants"]["it"]["markdown"].startswith("---")
    markdown = appointment["variants"]["en"]["markdown"]
    assert markdown.startswith("---\n")
    front, body = markdown[4:].split("\n---\n", 1)
    assert yaml.safe_load(front) == {
        lang: {"cta_1": {"text": label, "action": "iohandledlink://((url_prenotazione))"}}
        for lang, label in (
            ("it", "Disdici appuntamento"),
            ("en", "Cancel appointment"),
            ("de", "Termin absagen"),
        )
    }
    assert body.startswith("We have booked your appointment")


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "it"),
        ("", "it"),
        ("en-GB", "en"),
        ("DE", "de"),
        ("fr, de;q=0.2, en;q=0.3", "en"),
        ("en;q=0.5, de;q=0.5", "en"),
        ("en;q=bad, de;q=0.1", "de"),
        ("*", "it"),
    ],
)
def test_accept_language_picks_the_preferred_supported_language(
    header: str | None, language: str
) -> None:
    assert negotiate(header) == language
