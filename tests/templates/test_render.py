"""The renderer on its own: what a sender's values become, and every refusal at once."""

from __future__ import annotations

import pytest

from civio.templates.render import RenderError, leftover_markup, render, render_all


def test_values_flags_and_links_are_filled_in_one_pass() -> None:
    template = "Ciao ((nome)), [qui](((url))).((urgente?? Subito.)) Totale ((importo)) euro."
    filled = render(
        template, {"nome": "((url))", "url": "https://x.it", "urgente": False, "importo": 12.0}
    )
    # A value is text: the ``((url))`` it holds is never read as a slot.
    assert filled == "Ciao ((url)), [qui](https://x.it). Totale 12 euro."


def test_every_problem_is_listed_together() -> None:
    with pytest.raises(RenderError) as caught:
        render_all(
            {"subject": "Per ((nome))", "body": "((flag??Sì.)) ((data)) ((ora))"},
            {"nome": "", "flag": 1, "data": ["x"], "extra": "y"},
        )
    error = caught.value
    assert error.missing == ["ora"]
    assert error.unknown == ["extra"]
    assert error.empty == ["nome"]
    assert error.not_a_flag == ["flag"]
    assert error.not_a_value == ["data"]
    assert str(error).startswith("missing: ora; unknown")


def test_a_boolean_is_not_a_value() -> None:
    with pytest.raises(RenderError, match="must be a string or a number: nome"):
        render("Ciao ((nome))", {"nome": True})


def test_a_broken_slot_is_found() -> None:
    assert leftover_markup("Ciao ((nome)) e ((Cognome))") == "Ciao  e ((Cognome))"
    assert leftover_markup("Ciao ((nome))") is None
