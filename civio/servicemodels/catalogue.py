"""The shipped service models: one TOML file per model in ``models/``, loaded once.

TOML because the standard library reads it (``tomllib``): no runtime dependency, and a
strict syntax (no implicit types) for files that are mostly multi-line text.

The reference (``io-service-models.md``) describes 47 of IO's models; ``REFERENCE`` lists
them by the id civio gives each, in the reference's order, and ``missing()`` says which are
not shipped yet (a test keeps both honest). What is shipped: every model whose file is in
``models/``; Elezioni and the five sensitive models came first.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from pydantic import ValidationError

from civio.servicemodels.schemas import ServiceModel

# The 47 models the reference describes, in its order.
REFERENCE: tuple[str, ...] = (
    "elezioni",
    "tessera-elettorale",
    "presidenti-e-scrutatori",
    "carta-identita-elettronica",
    "anagrafe",
    "residenza",
    "permesso-di-soggiorno",
    "cittadinanza-italiana",
    "nascite-adozioni-riconoscimento",
    "separazione-e-divorzio",
    "servizi-cimiteriali",
    "accesso-civico-agli-atti",
    "consigli-e-giunte-comunali",
    "diritti-di-segreteria",
    "tari",
    "imu",
    "raccolta-differenziata",
    "servizi-idrici",
    "mensa-scolastica",
    "asilo-nido",
    "scuola-infanzia",
    "scuola-primaria-e-secondaria",
    "trasporto-scolastico",
    "contributi-allo-studio",
    "servizi-sociali",
    "assistenza-domiciliare",
    "alloggi-sociali",
    "prestazioni-sanitarie",
    "prevenzione",
    "vaccinazioni",
    "multe",
    "rimozione-veicoli",
    "permessi-sosta-e-circolazione",
    "sanzioni-amministrative",
    "giudici-popolari",
    "provvedimenti-giudiziari",
    "agevolazioni-tributarie",
    "riscossione-coattiva",
    "canone-unico-patrimoniale",
    "passo-carrabile",
    "protezione-civile",
    "imposta-di-soggiorno",
    "bandi-di-concorso",
    "cedolino-dipendenti",
    "rifiuti-ingombranti",
    "animali-domestici",
    "matrimoni-unioni-civili-convivenze",
)
SENSITIVE: frozenset[str] = frozenset(
    {"elezioni", "prestazioni-sanitarie", "prevenzione", "vaccinazioni", "servizi-cimiteriali"}
)


class ServiceModelError(Exception):
    """A shipped model file that cannot be read or does not validate."""


def parse(filename: str, text: str) -> ServiceModel:
    """One model file's text as a validated model whose id is the file's name."""
    try:
        model = ServiceModel.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ServiceModelError(f"{filename}: {exc}") from exc
    if f"{model.id}.toml" != filename:
        raise ServiceModelError(f"{filename}: its id is {model.id!r}")
    return model


@cache
def all_models() -> dict[str, ServiceModel]:
    """Every shipped model by id, in the reference's order (read once per process)."""
    folder = resources.files("civio.servicemodels") / "models"
    found = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            model = parse(entry.name, entry.read_text(encoding="utf-8"))
            found[model.id] = model
    unknown = found.keys() - set(REFERENCE)
    if unknown:
        raise ServiceModelError(f"models not in the reference list: {sorted(unknown)}")
    return {model_id: found[model_id] for model_id in REFERENCE if model_id in found}


def get_model(model_id: str) -> ServiceModel | None:
    return all_models().get(model_id)


def missing() -> list[str]:
    """The reference's models not shipped yet."""
    return [model_id for model_id in REFERENCE if model_id not in all_models()]
