"""The ASGI application: every surface, the problem renderer, and (embedded) the worker."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import civio
from civio import jobs as _jobs  # noqa: F401 - registers every job handler
from civio.auth.routes_citizen import router as auth_citizen
from civio.auth.routes_oidc import router as auth_oidc
from civio.catalog.routes_public import router as catalog_public
from civio.core.config import Settings
from civio.core.db_unavailable import DATABASE_ERRORS
from civio.core.http import BodySizeLimit, KeyRequired, ResponseHeaders
from civio.core.problems import (
    Problem,
    handle_database_error,
    handle_http,
    handle_problem,
    handle_unexpected,
    handle_validation,
)
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.core.url_guard import reject_nul_in_url
from civio.messages.routes_citizen import router as messages_citizen
from civio.messages.routes_pa import router as messages_pa
from civio.notifications.routes_citizen import router as notifications_citizen
from civio.ops.health import router as ops_router
from civio.ops.metrics import MetricsMiddleware
from civio.profiles.routes_citizen import router as profiles_citizen
from civio.profiles.routes_email import router as profiles_email
from civio.profiles.routes_pa import router as profiles_pa
from civio.servicemodels.catalogue import all_models as service_models
from civio.servicemodels.routes import router as service_models_pa
from civio.services.gateway import KEY_HEADER, Gateway, unauthorized
from civio.services.routes_admin import owners_router as owners_admin
from civio.services.routes_admin import require_admin
from civio.services.routes_admin import router as services_admin
from civio.services.routes_manage import router as services_manage
from civio.services.routes_pa import router as services_pa
from civio.templates.routes import router as templates_pa

log = structlog.get_logger(__name__)

PA_PREFIX = "/api/v1"
ADMIN_PREFIX = "/admin/v1"
# Each surface serves its own OpenAPI document at <prefix>/openapi.json and, but for the
# admin API, a Swagger UI at <prefix>/docs; the combined app serves neither.
SURFACES = {
    PA_PREFIX: "PA API",
    "/api/auth/v1": "citizen auth API",
    "/api/identity/v1": "citizen identity API",
    "/api/communication/v1": "citizen communication API",
    "/api/catalog/v1": "catalogue API",
    ADMIN_PREFIX: "admin API",
}
# Answers under these carry tokens or personal data: never stored by any cache.
PRIVATE_PREFIXES = (
    PA_PREFIX + "/",
    "/api/auth/v1/",
    "/api/identity/v1/",
    "/api/communication/v1/",
    ADMIN_PREFIX + "/",
)
# Swagger UI's script, stylesheet and icon, served from the swagger-ui-bundle package.
DOCS_ASSETS = "/docs-assets"
MISSING_KEY = unauthorized(
    "Access denied due to missing subscription key. Make sure to include "
    f"the {KEY_HEADER} header when making requests."
)


def _surface_openapi(app: FastAPI, prefix: str, title: str) -> dict[str, Any]:
    """One surface's OpenAPI document: the app's paths under ``prefix``, made relative."""
    full = app.openapi()
    document: dict[str, Any] = copy.deepcopy(full)
    document["info"] = {
        "title": f"civio {title}",
        "version": civio.__version__,
        "description": f"civio {title}; paths are relative to {prefix}.",
    }
    document["paths"] = {
        path[len(prefix) :]: item
        for path, item in full.get("paths", {}).items()
        if path.startswith(prefix + "/")
    }
    for item in document["paths"].values():
        for operation in item.values():
            # civio answers validation failures with 400 problems (as IO), never 422.
            operation.get("responses", {}).pop("422", None)
    _keep_referenced_schemas(document)
    document["servers"] = [{"url": prefix}]
    if prefix == PA_PREFIX:
        document.setdefault("components", {}).setdefault("securitySchemes", {})[
            "SubscriptionKey"
        ] = {"type": "apiKey", "name": "Ocp-Apim-Subscription-Key", "in": "header"}
        document["security"] = [{"SubscriptionKey": []}]
    return document


def _keep_referenced_schemas(document: dict[str, Any]) -> None:
    """Drop component schemas this surface never references (other surfaces' models)."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    keep: set[str] = set()
    pending = [document["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in keep and name in schemas:
                    keep.add(name)
                    pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    if schemas:
        document["components"]["schemas"] = {k: v for k, v in schemas.items() if k in keep}


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    run_worker: bool | None = None,
) -> FastAPI:
    """Build the app. A given ``runtime`` is used (and not closed); otherwise one is built."""
    service_models()  # read and validated now: a broken model file stops the start, once
    with_worker = settings.run_worker if run_worker is None else run_worker

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_runtime = runtime is None
        # A shared runtime (tests, embedding) is used with this app's settings and its own
        # per-process components (the accept group committer is built from these settings).
        rt = (
            dataclasses.replace(runtime, settings=settings, components={})
            if runtime
            else Runtime.build(settings)
        )
        app.state.runtime = rt
        app.state.gateway = Gateway.build(rt)
        worker_task = None
        worker = None
        if with_worker:
            worker = Worker(rt)
            worker_task = asyncio.create_task(worker.run(), name="civio-worker")
        try:
            yield
        finally:
            if worker is not None and worker_task is not None:
                worker.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker_task, timeout=10)
            if own_runtime:
                await rt.close()

    app = FastAPI(
        title="civio",
        version=civio.__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(reject_nul_in_url)],
        # Starlette would answer a path with a stray "/" by an absolute redirect built from
        # the client's Host header; civio answers 404 instead.
        redirect_slashes=False,
    )
    app.add_exception_handler(Problem, handle_problem)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    for database_error in DATABASE_ERRORS:  # 503 + Retry-After while the database is away
        app.add_exception_handler(database_error, handle_database_error)
    app.add_exception_handler(Exception, handle_unexpected)

    # Probes first: routes are matched in order, and /healthz last of ~100 routes spent
    # 39% of its time matching (py-spy).
    app.include_router(ops_router)
    pa = APIRouter(prefix=PA_PREFIX)
    pa.include_router(messages_pa)
    pa.include_router(profiles_pa)
    pa.include_router(services_pa)
    pa.include_router(services_manage)
    pa.include_router(service_models_pa)
    pa.include_router(templates_pa)
    app.include_router(pa)
    app.include_router(services_admin, prefix=ADMIN_PREFIX)
    app.include_router(owners_admin, prefix=ADMIN_PREFIX)
    app.include_router(auth_citizen)
    app.include_router(auth_oidc)
    app.include_router(profiles_citizen)
    app.include_router(profiles_email)
    app.include_router(catalog_public)
    app.include_router(messages_citizen)
    app.include_router(notifications_citizen)

    _serve_documents(app)

    @app.get("/api/info", include_in_schema=False)
    async def info(request: Request) -> dict[str, str]:
        return {"name": "civio", "version": civio.__version__}

    # Outermost last: forwarded headers are applied first, then every response is marked.
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        KeyRequired,
        prefix=PA_PREFIX + "/",
        header=KEY_HEADER,
        problem=MISSING_KEY,
    )
    app.add_middleware(ResponseHeaders, private_prefixes=PRIVATE_PREFIXES)
    if settings.trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_hosts(settings))
    return app


def trusted_hosts(settings: Settings) -> list[str]:
    """``CIVIO_TRUSTED_PROXIES`` as uvicorn's middleware reads it (it takes "10.0.0.1/8" for a
    host name, not a network, so each entry is normalised first)."""
    return [str(ipaddress.ip_network(entry, strict=False)) for entry in settings.trusted_proxies]


def _serve_documents(app: FastAPI) -> None:
    """Each surface's OpenAPI document (built once, on first request) and Swagger UI page."""
    documents: dict[str, dict[str, Any]] = {}

    def serve_openapi(prefix: str, title: str) -> None:
        async def surface_openapi() -> JSONResponse:
            if prefix not in documents:
                documents[prefix] = _surface_openapi(app, prefix, title)
            return JSONResponse(documents[prefix])

        # The admin document maps the operators' API: only for operators.
        guard = [Depends(require_admin)] if prefix == ADMIN_PREFIX else None
        app.add_api_route(
            f"{prefix}/openapi.json", surface_openapi, include_in_schema=False, dependencies=guard
        )

    def serve_swagger_ui(prefix: str, title: str) -> None:
        page = get_swagger_ui_html(
            openapi_url=f"{prefix}/openapi.json",
            title=f"civio {title}",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=None,
            # Swagger UI would otherwise send the document's URL to an online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

        html = bytes(page.body)

        async def swagger_ui() -> HTMLResponse:
            return HTMLResponse(html)

        app.add_api_route(f"{prefix}/docs", swagger_ui, include_in_schema=False)

    for prefix, title in SURFACES.items():
        serve_openapi(prefix, title)
        if prefix != ADMIN_PREFIX:
            serve_swagger_ui(prefix, title)
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")


def app_from_environment() -> FastAPI:
    """The factory each process of a multi-process ``civio serve`` calls: the parent passes
    everything (database URL, data dir, worker switch) through ``CIVIO_*`` variables."""
    from civio.core.logging import configure_logging
    from civio.core.serving import tune_gc

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    app = create_app(settings)
    tune_gc()
    return app
