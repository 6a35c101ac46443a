"""Guard: every route the app serves either refuses a caller without its surface's
credential, or is public on purpose and listed below with the reason.

The routes are read from the app itself (``create_app(...).routes``, included routers, mounts
and websocket routes), and each one is called: without a credential, with a malformed one and
with every other surface's valid credential, each of which must answer 401 or 403; and with
its own valid credential, which must not (so the refusal is the credential's doing, not a
missing row or a bad sample). A route added without authentication fails this test until it
gets a credential or an entry in ``PUBLIC`` with its reason.

Requests carry syntactically valid path values and, for a route with a body, an empty JSON
object: a credential is checked before the body is validated, so an unauthenticated caller
learns nothing about the body's shape (FastAPI runs dependencies before body validation).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.types import Message

from civio.app import create_app
from civio.core.config import Settings
from civio.core.db import transaction
from civio.services import owners
from civio.services.groups import KNOWN_GROUPS
from tests.factories import Factory, login


class Credential(enum.Enum):
    PA = "the PA subscription key (Ocp-Apim-Subscription-Key)"
    CITIZEN = "a citizen session token (Authorization: Bearer)"
    ADMIN = "the admin token (Authorization: Bearer)"
    MANAGE = "an owner's manage key (Ocp-Apim-Subscription-Key)"


# The credential each surface requires; the longest matching prefix wins.
SURFACES: dict[str, Credential] = {
    "/api/v1": Credential.PA,
    "/api/v1/manage": Credential.MANAGE,
    "/api/auth/v1": Credential.CITIZEN,
    "/api/identity/v1": Credential.CITIZEN,
    "/api/communication/v1": Credential.CITIZEN,
    "/admin/v1": Credential.ADMIN,
}

# Whole surfaces that are public by design.
PUBLIC_PREFIXES: dict[str, str] = {
    "/api/catalog/v1": "the service catalogue: what an app shows before anyone logs in",
}

# Public routes, by method and path template, each with why it needs no credential.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe: load balancers and orchestrators call it bare",
    ("GET", "/readyz"): "readiness probe: load balancers and orchestrators call it bare",
    ("GET", "/metrics"): "Prometheus scrape; CIVIO_METRICS_TOKEN restricts it",
    ("GET", "/api/info"): "name and version only, for clients checking what they talk to",
    ("POST", "/api/auth/v1/test-login"): "how a dev citizen gets a token (dev mode only)",
    ("GET", "/api/auth/v1/login"): "how a citizen starts a login: there is no token yet",
    ("GET", "/api/auth/v1/login/callback"): "the identity provider's redirect back",
    ("GET", "/validate-profile-email"): "the mailed link: its token is the credential",
    ("GET", "/api/v2/validate-profile-email"): "the link's JSON variant: the token header",
    ("POST", "/api/v2/validate-profile-email"): "the link's JSON variant: the token body",
    ("GET", "/api/v1/openapi.json"): "the PA API's contract, as IO publishes it",
    ("GET", "/api/v1/service-models"): "civio's shipped service models: published guidance",
    ("GET", "/api/v1/service-models/{model_id}"): "one shipped service model, like the list",
    ("GET", "/api/auth/v1/openapi.json"): "a public API's contract",
    ("GET", "/api/identity/v1/openapi.json"): "a public API's contract",
    ("GET", "/api/communication/v1/openapi.json"): "a public API's contract",
    ("GET", "/api/catalog/v1/openapi.json"): "a public API's contract",
    ("GET", "/api/v1/docs"): "the Swagger page of a public contract",
    ("GET", "/api/auth/v1/docs"): "the Swagger page of a public contract",
    ("GET", "/api/identity/v1/docs"): "the Swagger page of a public contract",
    ("GET", "/api/communication/v1/docs"): "the Swagger page of a public contract",
    ("GET", "/docs-assets/"): "Swagger UI's static files, served locally (no CDN)",
}

# A syntactically valid value for each path parameter name (checked against the route's own
# validator below); a new name needs an entry here.
PATH_SAMPLES: dict[str, str] = {
    "fiscal_code": "AAAAAA00A00A000A",
    "id": "01JDXZ2T5G8Q4K7W3M6N9P1R2S",
    "date": "2026-01-31",
    "organization_fiscal_code": "00000000000",
    "service_id": "01JDXZ2T5G8Q4K7W3M6N9P1R2S",
    "which": "primary",
    "installationID": "device-1",
    "model_id": "elezioni",
    "serviceId": "01JDXZ2T5G8Q4K7W3M6N9P1R2S",
    "keyType": "primary",
    "owner_id": "01JDXZ2T5G8Q4K7W3M6N9P1R2S",
    "template_id": "01JDXZ2T5G8Q4K7W3M6N9P1R2S",
}

WEBSOCKET = "WEBSOCKET"
REFUSED = {401, 403}


@dataclass(frozen=True)
class Endpoint:
    method: str  # an HTTP method, or WEBSOCKET
    path: str  # the template, as routed
    route: BaseRoute  # the route as declared (APIRoute, Mount, …)

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def endpoints(routes: list[BaseRoute], prefix: str = "") -> Iterator[Endpoint]:
    """Every method of every route, through included routers and mounted apps."""
    for context in iter_route_contexts(routes):
        route = context.original_route
        path = prefix + (context.path or "")
        if isinstance(route, Mount):
            if route.routes:
                yield from endpoints(list(route.routes), path)
            else:  # a mounted ASGI app (static files, …) with no routes of its own
                yield Endpoint("GET", path + "/", route)
        elif isinstance(route, (WebSocketRoute, APIWebSocketRoute)):
            yield Endpoint(WEBSOCKET, path, route)
        else:
            methods = set(context.methods or ())
            for method in sorted(methods):
                if method == "HEAD" and "GET" in methods:
                    continue  # served by the GET handler
                yield Endpoint(method, path, route)


def surface_of(path: str) -> Credential | None:
    matches = [p for p in SURFACES if path == p or path.startswith(p + "/")]
    return SURFACES[max(matches, key=len)] if matches else None


def public_reason(endpoint: Endpoint) -> str | None:
    for prefix, reason in PUBLIC_PREFIXES.items():
        if endpoint.path.startswith(prefix + "/"):
            return reason
    return PUBLIC.get(endpoint.key)


def concrete_path(endpoint: Endpoint) -> str:
    """The template with each parameter replaced by its sample, checked valid for the route."""
    names = re.findall(r"{(\w+)(?::\w+)?}", endpoint.path)
    missing = [name for name in names if name not in PATH_SAMPLES]
    assert not missing, f"{endpoint}: add a sample for path parameter(s) {missing}"
    if isinstance(endpoint.route, APIRoute):
        for field in endpoint.route.dependant.path_params:
            _, errors = field.validate(PATH_SAMPLES[field.alias], loc=("path", field.alias))
            assert not errors, f"{endpoint}: the sample for {field.alias} is invalid: {errors}"
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: PATH_SAMPLES[m.group(1)], endpoint.path)


def has_body(endpoint: Endpoint) -> bool:
    return isinstance(endpoint.route, APIRoute) and endpoint.route.body_field is not None


@dataclass
class Credentials:
    """One valid credential of each kind, and the headers that present it."""

    pa_key: str
    citizen_token: str
    admin_token: str
    manage_key: str

    def valid(self, kind: Credential) -> dict[str, str]:
        if kind is Credential.PA:
            return {"Ocp-Apim-Subscription-Key": self.pa_key}
        if kind is Credential.MANAGE:
            return {"Ocp-Apim-Subscription-Key": self.manage_key}
        if kind is Credential.CITIZEN:
            return {"Authorization": f"Bearer {self.citizen_token}"}
        return {"Authorization": f"Bearer {self.admin_token}"}

    def wrong(self, kind: Credential) -> dict[str, dict[str, str]]:
        """Each way of calling without ``kind``'s credential, by a name for the report."""
        variants: dict[str, dict[str, str]] = {
            "no credential": {},
            "malformed key": {"Ocp-Apim-Subscription-Key": "not-a-subscription-key"},
            "malformed bearer": {"Authorization": "Bearer not-a-token"},
            "empty bearer": {"Authorization": "Bearer "},
            "basic auth": {"Authorization": "Basic YWRtaW46YWRtaW4="},
            # Another surface's valid credential, also in this surface's header.
            "PA key as bearer": {"Authorization": f"Bearer {self.pa_key}"},
            "manage key as bearer": {"Authorization": f"Bearer {self.manage_key}"},
            "admin token as key": {"Ocp-Apim-Subscription-Key": self.admin_token},
            "citizen token as key": {"Ocp-Apim-Subscription-Key": self.citizen_token},
        }
        for other in Credential:
            if other is not kind:
                variants[f"valid {other.name} credential"] = self.valid(other)
        return variants


async def websocket_status(app: FastAPI, path: str, headers: dict[str, str]) -> int:
    """How a websocket handshake ends, in HTTP terms: 101 when the app accepts it, 403 when
    it closes before accepting (what uvicorn answers), else the status of its denial; 0 when
    the app answers nothing at all."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[int] = loop.create_future()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        if outcome.done():
            return
        if message["type"] == "websocket.accept":
            outcome.set_result(101)
        elif message["type"] == "websocket.close":
            outcome.set_result(403)
        elif message["type"] == "websocket.http.response.start":
            outcome.set_result(int(message["status"]))
        else:  # not a handshake message: a server fails the connection with a 500
            outcome.set_result(500)

    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"host", b"civio.test")],
        "client": ("203.0.113.7", 50000),
        "server": ("civio.test", 80),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    try:
        await asyncio.wait({outcome, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if outcome.done():
            return outcome.result()
        # Returned (or raised) without a handshake message: a server answers 500.
        return 500 if task.done() else 0
    finally:
        inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)


async def status_of(
    app: FastAPI, client: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str]
) -> int:
    path = concrete_path(endpoint)
    if endpoint.method == WEBSOCKET:
        return await websocket_status(app, path, headers)
    body = {"json": {}} if has_body(endpoint) else {}
    response = await client.request(endpoint.method, path, headers=headers, **body)
    return response.status_code


def served(settings: Settings) -> list[Endpoint]:
    """The app's endpoints, from a freshly built app (nothing is started to list them)."""
    return list(endpoints(list(create_app(settings, run_worker=False).routes)))


@pytest.fixture
async def credentials(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> Credentials:
    sender = await factory.sender(groups=list(KNOWN_GROUPS))
    _, headers = await login(client, settings)
    assert settings.admin_token
    async with transaction(factory.runtime.sessions) as session:
        owner = await owners.create_owner(session, f"guard-{secrets.token_hex(6)}@example.it")
    assert owner.primary_key
    return Credentials(
        pa_key=sender.key,
        citizen_token=headers["Authorization"].removeprefix("Bearer "),
        admin_token=settings.admin_token,
        manage_key=owner.primary_key,
    )


def test_the_walk_finds_every_kind_of_route(settings: Settings) -> None:
    # The walk itself must not go blind (as a plain ``app.routes`` loop does since FastAPI
    # 0.137 nests included routers): each surface and the probes are seen.
    seen = {endpoint.key for endpoint in served(settings)}
    assert ("GET", "/healthz") in seen
    assert ("POST", "/api/v1/messages") in seen
    assert ("GET", "/api/identity/v1/profile") in seen
    assert ("POST", "/admin/v1/services") in seen
    assert ("GET", "/api/catalog/v1/services") in seen
    assert ("PUT", "/api/v1/manage/services/{serviceId}/review") in seen
    assert ("POST", "/api/v1/templates/{template_id}/preview") in seen
    assert len(seen) > 40, sorted(seen)


async def test_every_surface_route_refuses_a_caller_without_its_credential(
    app: FastAPI,
    client: httpx.AsyncClient,
    factory: Factory,
    settings: Settings,
    credentials: Credentials,
) -> None:
    failures: list[str] = []
    for endpoint in served(settings):
        if public_reason(endpoint) is not None:
            continue
        kind = surface_of(endpoint.path)
        if kind is None:
            failures.append(
                f"{endpoint}: under no surface and not listed as public: move it under a "
                "surface's prefix or add it to PUBLIC with the reason"
            )
            continue
        for variant, headers in credentials.wrong(kind).items():
            status = await status_of(app, client, endpoint, headers)
            if status not in REFUSED:
                failures.append(f"{endpoint} with {variant}: {status}, want 401/403")
        # The surface's own credential gets past the check (a fresh session for citizen
        # routes: one of them is logout).
        if kind is Credential.CITIZEN:
            _, own = await login(client, settings)
        else:
            own = credentials.valid(kind)
        status = await status_of(app, client, endpoint, own)
        if status in REFUSED and not (kind is Credential.PA and status == 403):
            failures.append(f"{endpoint} with {kind.value}: {status}, want it accepted")
    assert not failures, "\n".join(failures)


async def test_every_listed_public_route_exists_and_is_public(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    by_key = {endpoint.key: endpoint for endpoint in served(settings)}
    failures: list[str] = []
    for key in PUBLIC:
        endpoint = by_key.get(key)
        if endpoint is None:
            failures.append(f"{key[0]} {key[1]} is listed as public but not served: delete it")
            continue
        status = await status_of(app, client, endpoint, {})
        if status in REFUSED:
            failures.append(
                f"{endpoint} is listed as public but answers {status} without a credential: "
                "delete its entry"
            )
    for endpoint in by_key.values():
        if any(endpoint.path.startswith(prefix + "/") for prefix in PUBLIC_PREFIXES):
            status = await status_of(app, client, endpoint, {})
            if status in REFUSED:
                failures.append(f"{endpoint} (public surface) answers {status}")
    assert not failures, "\n".join(failures)
