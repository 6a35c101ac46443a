"""The shipped models: each file loads, every message renders within IO's bounds in every
language, the sensitive ones keep sensitive data out of titles, and a broken file is
refused when it is read (here, not on a request)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from civio.core.languages import LANGUAGES
from civio.servicemodels import catalogue
from civio.servicemodels.catalogue import REFERENCE, SENSITIVE, ServiceModelError, parse
from civio.servicemodels.render import flags, placeholders
from civio.servicemodels.schemas import (
    ServiceModel,
)
from civio.servicemodels.service import markdown_of
from civio.servicemodels.vocabulary import sample_values
from civio.templates.render import RenderError, Slots, render


def render_sample(template: str, values: dict[str, str | bool]) -> str:
    """``template`` rendered by the templates' renderer with the samples it uses."""
    names = Slots.of([template]).names
    return render(template, {name: value for name, value in values.items() if name in names})


# IO's bounds (Guida tecnica): subject 10..120, markdown 80..10000 characters.
SUBJECT = range(10, 121)
BODY = range(80, 10_001)

MODELS = list(catalogue.all_models().values())
MESSAGES = [
    pytest.param(model, message, id=f"{model.id}.{message.key}")
    for model in MODELS
    for message in model.messages
]


def test_every_model_file_loads_and_is_in_the_reference() -> None:
    folder = resources.files("civio.servicemodels") / "models"
    files = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".toml"))
    assert files, "no model shipped"
    assert [f"{model_id}.toml" for model_id in catalogue.all_models()] == [
        f"{model_id}.toml" for model_id in REFERENCE if f"{model_id}.toml" in files
    ]
    assert len(files) == len(catalogue.all_models())


def test_the_reference_lists_47_models_and_the_missing_are_the_rest() -> None:
    assert len(REFERENCE) == len(set(REFERENCE)) == 47
    assert set(catalogue.missing()) == set(REFERENCE) - catalogue.all_models().keys()


def test_the_readme_says_how_many_are_shipped_and_which_are_missing() -> None:
    readme = (resources.files("civio.servicemodels") / "README.md").read_text(encoding="utf-8")
    shipped = re.search(r"Shipped: (\d+) of 47", readme)
    assert shipped is not None
    assert int(shipped.group(1)) == len(catalogue.all_models())
    listed = re.search(r"Missing:(.*?)(?:\n\n|$)", readme, re.S)
    assert listed is not None
    assert re.findall(r"`([a-z0-9-]+)`", listed.group(1)) == catalogue.missing()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.id)
def test_every_model_has_italian_english_and_german(model: ServiceModel) -> None:
    assert set(model.cards) == set(LANGUAGES)
    for message in model.messages:
        assert set(message.texts) == set(LANGUAGES)


@pytest.mark.parametrize(("model", "message"), MESSAGES)
@pytest.mark.parametrize("flags_on", [True, False], ids=["flags-on", "flags-off"])
def test_every_message_renders_within_ios_bounds(model, message, flags_on) -> None:  # type: ignore[no-untyped-def]
    values = sample_values(flags_on=flags_on)
    for lang in LANGUAGES:
        text = message.texts[lang]
        subject = render_sample(text.subject, values)
        body = render_sample(text.markdown, values)
        with_cta = render_sample(markdown_of(message, lang), values)
        assert len(subject) in SUBJECT, (lang, subject)
        assert len(body) in BODY, (lang, len(body))
        assert len(with_cta) in BODY, (lang, len(with_cta))
        assert "((" not in subject + with_cta, (lang, "a slot left unrendered")


@pytest.mark.parametrize("model", [m for m in MODELS if m.require_secure_channels], ids=str)
def test_sensitive_models_have_no_placeholder_in_any_subject(model: ServiceModel) -> None:
    for message in model.messages:
        for lang in LANGUAGES:
            subject = message.texts[lang].subject
            assert not placeholders(subject), (message.key, lang)
            assert not flags(subject), (message.key, lang)


def test_exactly_the_five_sensitive_models_are_flagged() -> None:
    flagged = {model.id for model in MODELS if model.require_secure_channels}
    assert flagged == SENSITIVE & catalogue.all_models().keys()
    assert catalogue.all_models().keys() >= SENSITIVE, "every sensitive model is shipped"


def test_payment_messages_say_what_for_how_much_and_by_when() -> None:
    for model in MODELS:
        for message in model.messages:
            if message.payment_notice:
                assert {"causale", "importo", "data_scadenza"} <= message.slots("it")


def test_elezioni_is_sensitive_with_five_messages_and_a_cancellable_appointment() -> None:
    elezioni = catalogue.get_model("elezioni")
    assert elezioni is not None
    assert elezioni.require_secure_channels is True
    assert elezioni.topic_id == 12
    assert [m.key for m in elezioni.messages] == [
        "nuove_elezioni",
        "lista_aggiunta",
        "voto_estero",
        "voto_assistito_domiciliare",
        "conferma_appuntamento",
    ]
    appointment = elezioni.messages[-1]
    assert appointment.due_date is True
    assert appointment.payment_notice is False
    assert appointment.cta_action == "iohandledlink://((url_prenotazione))"
    assert appointment.texts["it"].cta_label == "Disdici appuntamento"
    assert all(not m.payment_notice for m in elezioni.messages)
    assert [m.due_date for m in elezioni.messages] == [False] * 4 + [True]


def test_a_conditional_block_shows_only_when_its_flag_is_true() -> None:
    template = "Vota al seggio. ((trasporto_disabili??Ti portiamo noi.))Fine ((data))."
    on = render_sample(template, {"trasporto_disabili": True, "data": "01/01/2027"})
    off = render_sample(template, {"trasporto_disabili": False, "data": "01/01/2027"})
    assert on == "Vota al seggio. Ti portiamo noi.Fine 01/01/2027."
    assert off == "Vota al seggio. Fine 01/01/2027."


def test_a_missing_value_is_an_error_not_an_empty_slot() -> None:
    with pytest.raises(RenderError, match="missing: ora_appuntamento"):
        render("Il ((data)) alle ((ora_appuntamento))", {"data": "01/01/2027"})


# --- broken files are refused when read ---------------------------------------------------

ELEZIONI = (resources.files("civio.servicemodels") / "models" / "elezioni.toml").read_text(
    encoding="utf-8"
)


def broken(old: str, new: str) -> str:
    assert old in ELEZIONI
    return ELEZIONI.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("id = [", "Invalid"),
        (broken("topic_id = 12", "topic_id = 18"), "topic_id"),
        (broken('id = "elezioni"', 'id = "Elezioni!"'), "id"),
        (broken("[cards.de]", "[cards.fr]"), "cards"),
        (
            broken('subject = "Si vota: ecco quando e dove"', 'subject = "Si vota il ((data))"'),
            "no placeholder",
        ),
        (broken("È tempo di votare: ((consultazione))", "È tempo: ((elezione))"), "unknown"),
        (broken("È tempo di votare: ((consultazione))", "È tempo: ((consultazione)"), "bad slot"),
        (broken('cta_label = "Disdici appuntamento"\n', ""), "CTA"),
        (broken("del ((data)).\n\nVai al seggio", "del.\n\nVai al seggio"), "same slots"),
        (broken('key = "lista_aggiunta"', 'key = "nuove_elezioni"'), "repeat"),
        (
            broken('key = "lista_aggiunta"', 'key = "lista_aggiunta"\npayment_notice = true'),
            "how much",
        ),
        (
            broken("require_secure_channels = true", 'require_secure_channels = "yes"'),
            "require_secure_channels",
        ),
        (broken('cta_action = "iohandledlink://', 'cta_action = "http://'), "cta_action"),
    ],
)
def test_a_malformed_model_file_is_refused_with_its_name(text: str, reason: str) -> None:
    with pytest.raises(ServiceModelError) as refused:
        parse("elezioni.toml", text)
    assert str(refused.value).startswith("elezioni.toml: ")
    assert reason in str(refused.value)


def test_a_file_named_after_another_id_is_refused() -> None:
    with pytest.raises(ServiceModelError, match="its id is 'elezioni'"):
        parse("tessera-elettorale.toml", ELEZIONI)
