"""The public catalogue (``/api/catalog/v1``).

The test database is shared with every other test of the worker, so each test names its
services and organizations with a random token and only looks at what carries it.
"""

from __future__ import annotations

import random
import string
import unicodedata
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from civio.catalog.repository import fold, pattern, search_terms
from civio.core.db import transaction
from civio.services import service as services
from civio.services.schemas import ServiceMetadata, ServiceUpdate
from tests.factories import Factory, Sender, random_fiscal_code

BASE = "/api/catalog/v1"


def token() -> str:
    # Letters only, so a token never matches a number in another test's data.
    return "".join(random.choices(string.ascii_lowercase, k=12))


def organization_fiscal_code() -> str:
    return "".join(random.choices(string.digits, k=11))


async def publish(
    factory: Factory,
    *,
    name: str,
    organization_name: str = "Comune di Prova",
    ofc: str | None = None,
    visible: bool = True,
    metadata: ServiceMetadata | None = None,
    **sender: Any,
) -> Sender:
    created = await factory.sender(
        organization_fiscal_code=ofc or organization_fiscal_code(), **sender
    )
    async with transaction(factory.runtime.sessions) as session:
        await services.update_service(
            session,
            created.service_id,
            ServiceUpdate(
                name=name,
                organization_name=organization_name,
                visible=visible,
                service_metadata=metadata or ServiceMetadata(),
            ),
            sandbox_fiscal_code=factory.settings.sandbox_fiscal_code,
        )
    return created


def assert_problem(response: httpx.Response, status: int, title: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    if title is not None:
        assert body["title"] == title


async def ids(client: httpx.AsyncClient, url: str, **params: Any) -> list[str]:
    response = await client.get(url, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["services"]]


# --- folding ---------------------------------------------------------------------------


def test_fold_removes_case_and_accents() -> None:
    assert fold("Città") == "citta"
    assert fold("CITTÀ") == "citta"
    assert fold("citta\u0300") == "citta"  # decomposed
    assert fold("Forlì-Cesena ÆØ Łódź") == "forli-cesena æo lodz"
    assert search_terms("  Città\x00di\tProva  città ") == ["citta", "di", "prova"]
    assert search_terms(None) == []


async def test_patterns_find_every_spelling_in_postgresql(factory: Factory) -> None:
    """Each accented letter, in either case, precomposed or decomposed, is found by the
    pattern of its folded form; and the pattern is not a wildcard."""
    accented = [chr(c) for c in range(0xC0, 0x250) if fold(chr(c)).isascii()] + ["İ", "Ø", "ł"]
    cases = [(f"x{c}y", f"x{c.lower()}y") for c in accented]
    cases += [(unicodedata.normalize("NFD", f"x{c}y"), f"x{c}y") for c in accented]
    cases += [("Città di Forlì", "citta di"), ("UNIVERSITÀ", "università"), ("a.b*c", "a.b*c")]
    misses = [("Citta", "città di"), ("abc", "a.c"), ("aXc", "a_c"), ("100", "1%0"), ("ab", "a\\")]
    query = text(
        "SELECT array_agg(h) FROM unnest(CAST(:h AS text[]), CAST(:p AS text[])) AS t(h, p)"
        " WHERE h ~* p"
    )
    async with factory.runtime.sessions() as session:
        found = await session.scalar(
            query, {"h": [h for h, _ in cases], "p": [pattern(t) for _, t in cases]}
        )
        assert sorted(found or []) == sorted(h for h, _ in cases)
        wrong = await session.scalar(
            query, {"h": [h for h, _ in misses], "p": [pattern(t) for _, t in misses]}
        )
        assert wrong is None


# --- services ---------------------------------------------------------------------------


async def test_lists_only_visible_services(client: httpx.AsyncClient, factory: Factory) -> None:
    tag = token()
    shown = await publish(factory, name=f"Tari {tag}", organization_name="Comune di Prova")
    await publish(factory, name=f"Imu {tag}", visible=False)

    response = await client.get(f"{BASE}/services", params={"search": tag})
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "services": [
            {
                "id": shown.service_id,
                "name": f"Tari {tag}",
                "version": 1,
                "organization_name": "Comune di Prova",
            }
        ],
        "count": 1,
        "limit": 20,
        "offset": 0,
    }


async def test_service_detail(client: httpx.AsyncClient, factory: Factory) -> None:
    tag = token()
    ofc = organization_fiscal_code()
    metadata = ServiceMetadata(
        scope="LOCAL",
        description=f"Pagamento della tassa sui rifiuti {tag}",
        web_url="https://comune.example/tari",
        privacy_url="https://comune.example/privacy",
        email="tari@comune.example",
        app_android="https://play.example/app",
        cta="---\nit:\n  cta_1:\n    text: Paga\n    action: ioit://PAY\n---",
        internal_note="not for the public",  # an extra key stays private
    )
    sender = await publish(
        factory, name="Tari", organization_name="Comune di Prova", ofc=ofc, metadata=metadata
    )
    response = await client.get(f"{BASE}/services/{sender.service_id}")
    assert response.status_code == 200
    assert response.json() == {
        "id": sender.service_id,
        "name": "Tari",
        "description": f"Pagamento della tassa sui rifiuti {tag}",
        "organization": {"name": "Comune di Prova", "fiscal_code": ofc},
        "metadata": {
            "scope": "LOCAL",
            "category": "STANDARD",
            "web_url": "https://comune.example/tari",
            "privacy_url": "https://comune.example/privacy",
            "email": "tari@comune.example",
            "app_android": "https://play.example/app",
            "cta": metadata.cta,  # type: ignore[attr-defined]
        },
    }


async def test_special_service_detail_shows_its_flow(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await publish(
        factory,
        name="Carta Giovani",
        metadata=ServiceMetadata(category="SPECIAL", custom_special_flow="cgn"),
        special=True,
    )
    body = (await client.get(f"{BASE}/services/{sender.service_id}")).json()
    assert body["description"] == ""
    assert body["metadata"] == {
        "scope": "NATIONAL",
        "category": "SPECIAL",
        "custom_special_flow": "cgn",
    }


async def test_hidden_or_unknown_service_is_not_found(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    hidden = await publish(factory, name=f"Nascosto {token()}", visible=False)
    assert_problem(await client.get(f"{BASE}/services/{hidden.service_id}"), 404)
    assert_problem(
        await client.get(f"{BASE}/services/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "Service not found"
    )
    # A NUL cannot be an id (nor anything PostgreSQL stores): refused before any lookup.
    assert_problem(await client.get(f"{BASE}/services/%00"), 400)


async def test_a_service_hidden_again_leaves_the_catalogue(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    tag = token()
    sender = await publish(factory, name=f"Temporaneo {tag}")
    assert await ids(client, f"{BASE}/services", search=tag) == [sender.service_id]
    async with transaction(factory.runtime.sessions) as session:
        await services.update_service(
            session,
            sender.service_id,
            ServiceUpdate(visible=False),
            sandbox_fiscal_code=factory.settings.sandbox_fiscal_code,
        )
    assert await ids(client, f"{BASE}/services", search=tag) == []
    assert_problem(await client.get(f"{BASE}/services/{sender.service_id}"), 404)


async def test_paging_has_no_overlap_and_a_stable_order(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    tag = token()
    names = ["Zona traffico", "bollo", "Ètica", "Cimiteri", "Anagrafe"]
    created = {(await publish(factory, name=f"{n} {tag}")).service_id for n in names}
    pages = []
    for offset in (0, 2, 4, 6):
        response = await client.get(
            f"{BASE}/services", params={"search": tag, "limit": 2, "offset": offset}
        )
        body = response.json()
        assert (body["count"], body["limit"], body["offset"]) == (5, 2, offset)
        pages.append([s["name"] for s in body["services"]])
    # Case does not move a name; accented letters sort after z (code-point order, see the
    # repository module).
    assert pages == [
        [f"Anagrafe {tag}", f"bollo {tag}"],
        [f"Cimiteri {tag}", f"Zona traffico {tag}"],
        [f"Ètica {tag}"],
        [],
    ]
    assert set(await ids(client, f"{BASE}/services", search=tag, limit=100)) == created


async def test_scope_filter(client: httpx.AsyncClient, factory: Factory) -> None:
    tag = token()
    local = await publish(factory, name=f"Locale {tag}", metadata=ServiceMetadata(scope="LOCAL"))
    national = await publish(
        factory, name=f"Nazionale {tag}", metadata=ServiceMetadata(scope="NATIONAL")
    )
    url = f"{BASE}/services"
    assert await ids(client, url, search=tag, scope="LOCAL") == [local.service_id]
    assert await ids(client, url, search=tag, scope="NATIONAL") == [national.service_id]
    assert await ids(client, url, search=tag) == [local.service_id, national.service_id]


async def test_search_ignores_case_and_accents(client: httpx.AsyncClient, factory: Factory) -> None:
    tag = token()
    city = await publish(factory, name=f"Servizi della Città {tag}")
    decomposed = await publish(factory, name=unicodedata.normalize("NFD", f"Università {tag}"))
    organization = await publish(
        factory, name=f"Anagrafe {tag}", organization_name="Comune di Sant'Agata de' Goti"
    )
    described = await publish(
        factory,
        name=f"Tributi {tag}",
        metadata=ServiceMetadata(description="Perché pagare la TARÌ è più semplice"),
    )
    url = f"{BASE}/services"
    for query in ("citta", "CITTÀ", "Citta\u0300", "cItTa"):
        assert await ids(client, url, search=f"{query} {tag}") == [city.service_id], query
    for query in ("universita", "UNIVERSITÀ"):
        assert await ids(client, url, search=f"{query} {tag}") == [decomposed.service_id]
    assert await ids(client, url, search=f"{tag} sant'agata") == [organization.service_id]
    assert await ids(client, url, search=f"goti {tag.upper()}") == [organization.service_id]
    assert await ids(client, url, search=f"perche tari {tag}") == [described.service_id]
    assert await ids(client, url, search=f"citta goti {tag}") == []  # every word must match
    assert await ids(client, url, search=f"nowhere{tag}") == []


async def test_search_wildcards_are_plain_characters(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    tag = token()
    percent = await publish(factory, name=f"Sconto 100% {tag}")
    await publish(factory, name=f"Sconto 1000 {tag}")
    underscore = await publish(factory, name=f"a_b {tag}")
    await publish(factory, name=f"axb {tag}")
    url = f"{BASE}/services"
    assert await ids(client, url, search=f"100% {tag}") == [percent.service_id]
    assert await ids(client, url, search=f"a_b {tag}") == [underscore.service_id]
    assert await ids(client, url, search=f"% {tag}") == [percent.service_id]


@pytest.mark.parametrize("search", ["%", "_", "\\", "'", "🙂", "\u202e", "a" * 100, "ß", "İ", " "])
async def test_any_search_text_is_answered(client: httpx.AsyncClient, search: str) -> None:
    for path in ("/services", "/institutions"):
        response = await client.get(f"{BASE}{path}", params={"search": search, "limit": 1})
        assert response.status_code == 200, (path, search, response.text)


# --- institutions -----------------------------------------------------------------------


async def test_institutions_have_a_visible_service(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    tag = token()
    ofc, hidden_ofc = organization_fiscal_code(), organization_fiscal_code()
    await publish(factory, name="Tari", organization_name=f"Comune di Àrco {tag}", ofc=ofc)
    await publish(factory, name="Imu", organization_name=f"Comune di Àrco {tag}", ofc=ofc)
    await publish(
        factory,
        name="Segreto",
        organization_name=f"Ente nascosto {tag}",
        ofc=hidden_ofc,
        visible=False,
    )

    response = await client.get(f"{BASE}/institutions", params={"search": f"arco {tag}"})
    assert response.status_code == 200
    assert response.json() == {
        "institutions": [{"id": ofc, "name": f"Comune di Àrco {tag}", "fiscal_code": ofc}],
        "count": 1,
        "limit": 20,
        "offset": 0,
    }
    only_hidden = await client.get(f"{BASE}/institutions", params={"search": f"ente {tag}"})
    assert only_hidden.json()["count"] == 0


async def test_institutions_paging_and_scope(client: httpx.AsyncClient, factory: Factory) -> None:
    tag = token()
    codes = [organization_fiscal_code() for _ in range(3)]
    for index, ofc in enumerate(codes):
        await publish(
            factory,
            name="Servizio",
            organization_name=f"Ente {index} {tag}",
            ofc=ofc,
            metadata=ServiceMetadata(scope="LOCAL" if index == 1 else "NATIONAL"),
        )
    seen = []
    for offset in (0, 2):
        body = (
            await client.get(
                f"{BASE}/institutions", params={"search": tag, "limit": 2, "offset": offset}
            )
        ).json()
        assert body["count"] == 3
        seen += [i["fiscal_code"] for i in body["institutions"]]
    assert seen == codes  # ordered by name: "Ente 0", "Ente 1", "Ente 2"
    local = (
        await client.get(f"{BASE}/institutions", params={"search": tag, "scope": "LOCAL"})
    ).json()
    assert [i["id"] for i in local["institutions"]] == [codes[1]]


async def test_institution_services(client: httpx.AsyncClient, factory: Factory) -> None:
    ofc = organization_fiscal_code()
    tari = await publish(factory, name="Tari", ofc=ofc)
    anagrafe = await publish(factory, name="anagrafe", ofc=ofc)
    await publish(factory, name="Bozza", ofc=ofc, visible=False)
    await publish(factory, name="Altro ente")  # another organization

    url = f"{BASE}/institutions/{ofc}/services"
    response = await client.get(url)
    assert response.status_code == 200
    assert response.json() == {
        "services": [
            {"id": anagrafe.service_id, "name": "anagrafe", "version": 1},
            {"id": tari.service_id, "name": "Tari", "version": 1},
        ],
        "count": 2,
        "limit": 20,
        "offset": 0,
    }
    second = (await client.get(url, params={"limit": 1, "offset": 1})).json()
    assert second["services"] == [{"id": tari.service_id, "name": "Tari", "version": 1}]
    assert second["count"] == 2


async def test_unknown_institution_is_an_empty_page(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/institutions/{organization_fiscal_code()}/services")
    assert response.status_code == 200
    assert response.json() == {"services": [], "count": 0, "limit": 20, "offset": 0}


@pytest.mark.parametrize("ofc", ["1234567890", "123456789012", "1234567890a", "%00"])
async def test_institution_fiscal_code_is_checked(client: httpx.AsyncClient, ofc: str) -> None:
    response = await client.get(f"{BASE}/institutions/{ofc}/services")
    assert_problem(response, 400, "Invalid OrganizationFiscalCode")


# --- secrets and errors -----------------------------------------------------------------


async def test_no_secret_ever_appears(client: httpx.AsyncClient, factory: Factory) -> None:
    tag = token()
    ofc = organization_fiscal_code()
    recipient = random_fiscal_code()
    owner = f"owner-{tag}@example.org"
    sender = await publish(
        factory,
        name=f"Riservato {tag}",
        organization_name=f"Ente {tag}",
        ofc=ofc,
        recipients=[recipient],
        cidrs=["198.51.100.0/24"],
        max_amount=987654321,
        owner_email=owner,
        metadata=ServiceMetadata(description=f"Descrizione {tag}"),
    )
    responses = [
        await client.get(f"{BASE}/services", params={"search": tag}),
        await client.get(f"{BASE}/services/{sender.service_id}"),
        await client.get(f"{BASE}/institutions", params={"search": tag}),
        await client.get(f"{BASE}/institutions/{ofc}/services"),
    ]
    for response in responses:
        assert response.status_code == 200
        text = response.text
        assert sender.service_id in text or ofc in text
        for secret in (
            sender.key,
            sender.secondary_key,
            recipient,
            factory.settings.sandbox_fiscal_code,
            "198.51.100.0",
            "987654321",
            owner,
        ):
            assert secret not in text
        for field in (
            "authorized_recipients",
            "authorized_cidrs",
            "max_allowed_payment_amount",
            "groups",
            "primary_key",
            "secondary_key",
            "owner",
            "ApiMessageWrite",
        ):
            assert f'"{field}"' not in text
            assert field not in text


LIST_URLS = ["/services", "/institutions", "/institutions/12345678901/services"]


@pytest.mark.parametrize("path", LIST_URLS)
@pytest.mark.parametrize(
    ("params", "title"),
    [
        ({"limit": 0}, "Invalid 'limit' supplied in request query"),
        ({"limit": 101}, "Invalid 'limit' supplied in request query"),
        ({"limit": "ten"}, "Invalid 'limit' supplied in request query"),
        ({"limit": "1.5"}, "Invalid 'limit' supplied in request query"),
        ({"offset": -1}, "Invalid 'offset' supplied in request query"),
        ({"offset": 100_001}, "Invalid 'offset' supplied in request query"),
    ],
)
async def test_bad_paging_is_a_problem(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], title: str
) -> None:
    assert_problem(await client.get(f"{BASE}{path}", params=params), 400, title)


@pytest.mark.parametrize("path", ["/services", "/institutions"])
@pytest.mark.parametrize(
    ("params", "title"),
    [
        ({"scope": "REGIONAL"}, "Invalid 'scope' supplied in request query"),
        ({"scope": "local"}, "Invalid 'scope' supplied in request query"),
        ({"search": ""}, "Invalid 'search' supplied in request query"),
        ({"search": "x" * 101}, "Invalid 'search' supplied in request query"),
    ],
)
async def test_bad_filters_are_a_problem(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], title: str
) -> None:
    assert_problem(await client.get(f"{BASE}{path}", params=params), 400, title)


@pytest.mark.parametrize("path", LIST_URLS)
async def test_bounds_are_inclusive(client: httpx.AsyncClient, path: str) -> None:
    for params in ({"limit": 1}, {"limit": 100}, {"offset": 0}, {"offset": 100_000}):
        response = await client.get(f"{BASE}{path}", params=params)
        assert response.status_code == 200, (params, response.text)


async def test_the_catalogue_needs_no_credentials_and_has_its_openapi(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get(f"{BASE}/openapi.json")).json()
    assert document["servers"] == [{"url": BASE}]
    assert set(document["paths"]) == {
        "/services",
        "/services/{service_id}",
        "/institutions",
        "/institutions/{organization_fiscal_code}/services",
    }
    assert "security" not in document
    assert (await client.get(f"{BASE}/services", params={"limit": 1})).status_code == 200
