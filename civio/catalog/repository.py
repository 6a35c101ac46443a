"""Catalogue queries: only visible services, and only the columns the catalogue shows.

Visible means published: the management API keeps ``is_visible`` as a service's publication
state (``civio.services.manage_service``), so a service is here only once an operator approved
a version of it and it is published, and leaves the moment it is unpublished or deleted.

Every query selects named columns instead of ``Service`` rows, so key digests, recipients,
CIDRs, groups and payment limits are never even read by this module.

Search is case- and accent-insensitive without PostgreSQL's ``unaccent`` or ``pg_trgm``:
neither ships with the PostgreSQL 16 of the ``pgserver`` wheel (``pg_available_extensions``
lists neither, and that build has no ICU either), and a managed database may not allow them.
Folding every row in SQL instead (``translate()`` over the accented letters) was measured at
about 0.2 ms per row, seconds for a national catalogue. So the folding happens on the search
side only: each term is folded in Python (lower-case, accented Latin letters to their ASCII
base, combining marks dropped) and turned into a case-insensitive regular expression whose
letters are classes of every letter that folds to them, each followed by optional combining
marks: "citta" becomes ``c…i…t…t…[aàáâ…ÀÁÂ…]`` and matches "Città" whether stored precomposed
or decomposed. That is one regex scan per visible row (about 1 µs).

Each whitespace-separated term must occur somewhere in the service name, the organization
name or the description, in any order, as a full-text query would; every other character of a
term is escaped, so ``%``, ``_``, ``.`` or ``*`` are plain characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from civio.catalog.schemas import (
    CatalogService,
    CatalogServiceMetadata,
    Category,
    Institution,
    Organization,
    Scope,
    ServiceDetails,
    ServiceMinified,
)
from civio.services.models import Service
from civio.services.schemas import shown_metadata

# Letters that NFKD does not split into base + mark but that readers treat as accented.
_EXTRA_FOLDS = {"Ø": "o", "ø": "o", "Đ": "d", "đ": "d", "Ð": "d", "ð": "d", "Ł": "l", "ł": "l"}
_EXTRA_FOLDS |= {"Ħ": "h", "ħ": "h", "ı": "i"}
_COMBINING_MARKS = "".join(chr(cp) for cp in range(0x300, 0x370))
_OPTIONAL_MARKS = f"[{chr(0x300)}-{chr(0x36F)}]*"


def _fold_pairs() -> dict[str, str]:
    """Accented Latin letter (either case) → its lower-case ASCII base."""
    pairs = dict(_EXTRA_FOLDS)
    for codepoint in range(0xC0, 0x250):
        char = chr(codepoint)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        if len(base) == 1 and base.isascii() and base.isalpha():
            pairs[char] = base.lower()
    return pairs


_FOLDS = _fold_pairs()
_PY_FOLD = str.maketrans("".join(_FOLDS), "".join(_FOLDS.values()), _COMBINING_MARKS)


def _variants() -> dict[str, str]:
    """ASCII base letter → itself in both cases and every letter that folds to it."""
    variants: dict[str, str] = {}
    for accented, base in _FOLDS.items():
        variants[base] = variants.get(base, base + base.upper()) + accented
    return variants


_VARIANTS = _variants()

_VISIBLE = Service.is_visible.is_(True)
# By name ignoring case, then id so that pages never overlap. Accented letters sort by code
# point (after "z"): folding every row to sort costs what it costs for search (see above),
# and the bundled PostgreSQL has no ICU collation to sort linguistically.
_BY_NAME = (func.lower(Service.service_name), Service.service_id.expression)
_STORED_SCOPE: ColumnElement[str] = Service.service_metadata["scope"].astext
_DESCRIPTION: ColumnElement[str] = Service.service_metadata["description"].astext


def fold(text: str) -> str:
    """Lower-case, accents off: the form both of search terms and of what ``pattern`` finds."""
    return text.lower().translate(_PY_FOLD)


def pattern(term: str) -> str:
    """A PostgreSQL regular expression (for ``~*``) matching any text that folds to contain
    the folded ``term``."""
    parts = []
    for char in fold(term):
        if char in _VARIANTS:
            parts.append(f"[{_VARIANTS[char]}]")
        elif char.isascii() and not char.isalnum():
            parts.append("\\" + char)  # a backslash before a non-alphanumeric is a literal
        else:
            parts.append(char)
        parts.append(_OPTIONAL_MARKS)
    return "".join(parts)


def search_terms(search: str | None) -> list[str]:
    """Folded, de-duplicated terms; control and format characters separate terms, and PostgreSQL
    could not take a NUL byte anyway."""
    if not search:
        return []
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in search)
    return list(dict.fromkeys(fold(cleaned).split()))


def _scope_is(scope: Scope) -> ColumnElement[bool]:
    # Anything but LOCAL reads as NATIONAL (the operator's default), here and in the detail.
    if scope == "LOCAL":
        return _STORED_SCOPE == "LOCAL"
    return _STORED_SCOPE.is_distinct_from("LOCAL")


def _matches_all(haystack: ColumnElement[str], terms: list[str]) -> list[ColumnElement[bool]]:
    return [haystack.regexp_match(pattern(term), flags="i") for term in terms]


def _service_haystack() -> ColumnElement[str]:
    return (
        Service.service_name
        + " "
        + Service.organization_name
        + " "
        + func.coalesce(_DESCRIPTION, "")
    )


async def _page(
    session: AsyncSession,
    query: Select[*tuple[Any, ...]],
    order_by: tuple[ColumnElement[Any], ...],
    *,
    limit: int,
    offset: int,
) -> tuple[int, Sequence[Row[Any]]]:
    """One page and the total, in one scan: ``count(*) OVER ()`` is computed before LIMIT.
    Only a page past the end (no row to carry the total) costs a second, counting query."""
    total = func.count().over().label("_total")
    rows = (
        await session.execute(
            query.add_columns(total).order_by(*order_by).limit(limit).offset(offset)
        )
    ).all()
    if rows:
        return int(rows[0]._total), rows
    if offset == 0:
        return 0, rows
    count = await session.scalar(select(func.count()).select_from(query.subquery()))
    return int(count or 0), rows


async def list_services(
    session: AsyncSession, *, limit: int, offset: int, scope: Scope | None, terms: list[str]
) -> tuple[int, list[CatalogService]]:
    conditions = [_VISIBLE, *_matches_all(_service_haystack(), terms)]
    if scope is not None:
        conditions.append(_scope_is(scope))
    base = select(
        Service.service_id, Service.service_name, Service.version, Service.organization_name
    ).where(*conditions)
    count, rows = await _page(session, base, _BY_NAME, limit=limit, offset=offset)
    return count, [
        CatalogService(
            id=r.service_id,
            name=r.service_name,
            version=r.version,
            organization_name=r.organization_name,
        )
        for r in rows
    ]


async def get_service(session: AsyncSession, service_id: str) -> ServiceDetails | None:
    if "\x00" in service_id:  # no such id, and PostgreSQL rejects NUL in text
        return None
    row = (
        await session.execute(
            select(
                Service.service_id,
                Service.service_name,
                Service.organization_name,
                Service.organization_fiscal_code,
                Service.category,
                Service.service_metadata,
            ).where(Service.service_id == service_id, _VISIBLE)
        )
    ).one_or_none()
    if row is None:
        return None
    stored: dict[str, Any] = row.service_metadata or {}
    category: Category = "SPECIAL" if row.category == "SPECIAL" else "STANDARD"
    scope: Scope = "LOCAL" if stored.get("scope") == "LOCAL" else "NATIONAL"
    # Only IO's metadata fields are shown; anything else in the JSON stays private.
    shown = shown_metadata(stored)
    flow = stored.get("custom_special_flow")
    if category == "SPECIAL" and isinstance(flow, str) and flow:
        shown["custom_special_flow"] = flow
    description = stored.get("description")
    return ServiceDetails(
        id=row.service_id,
        name=row.service_name,
        description=description if isinstance(description, str) else "",
        organization=Organization(
            name=row.organization_name, fiscal_code=row.organization_fiscal_code
        ),
        metadata=CatalogServiceMetadata(scope=scope, category=category, **shown),
    )


async def list_institutions(
    session: AsyncSession, *, limit: int, offset: int, scope: Scope | None, terms: list[str]
) -> tuple[int, list[Institution]]:
    visible = [_VISIBLE] if scope is None else [_VISIBLE, _scope_is(scope)]
    # An organization's services may disagree on its name (renamed, typo); the most recently
    # updated visible service speaks for it.
    named = (
        select(
            Service.organization_fiscal_code.label("fiscal_code"),
            Service.organization_name.label("name"),
        )
        .where(*visible)
        .ext(distinct_on(Service.organization_fiscal_code))
        .order_by(
            Service.organization_fiscal_code,
            Service.updated_at.desc(),
            Service.service_id.desc(),
        )
        .subquery("institutions")
    )
    base = select(named.c.fiscal_code, named.c.name).where(*_matches_all(named.c.name, terms))
    order_by = (func.lower(named.c.name), named.c.fiscal_code)
    count, rows = await _page(session, base, order_by, limit=limit, offset=offset)
    return count, [
        Institution(id=r.fiscal_code, name=r.name, fiscal_code=r.fiscal_code) for r in rows
    ]


async def list_institution_services(
    session: AsyncSession, organization_fiscal_code: str, *, limit: int, offset: int
) -> tuple[int, list[ServiceMinified]]:
    base = select(Service.service_id, Service.service_name, Service.version).where(
        Service.organization_fiscal_code == organization_fiscal_code, _VISIBLE
    )
    count, rows = await _page(session, base, _BY_NAME, limit=limit, offset=offset)
    return count, [
        ServiceMinified(id=r.service_id, name=r.service_name, version=r.version) for r in rows
    ]
