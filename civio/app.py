"""The ASGI application: every surface, the problem renderer, and (embedded) the worker."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import civio
from civio import jobs as _jobs  # noqa: F401 - registers every job handler
from civio.auth.routes_citizen import router as auth_citizen
from civio.auth.routes_oidc import router as auth_oidc
from civio.catalog.routes_public import router as catalog_public
from civio.core.config import Settings
from civio.core.http import BodySizeLimit
from civio.core.problems import (
    Problem,
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
from civio.services.gateway import Gateway
from civio.services.routes_admin import router as services_admin
from civio.services.routes_pa import router as services_pa

log = structlog.get_logger(__name__)

PA_PREFIX = "/api/v1"
ADMIN_PREFIX = "/admin/v1"
# Each surface serves its own OpenAPI document at <prefix>/openapi.json.
SURFACES = {
    PA_PREFIX: "PA API",
    "/api/auth/v1": "citizen auth API",
    "/api/identity/v1": "citizen identity API",
    "/api/communication/v1": "citizen communication API",
    "/api/catalog/v1": "catalogue API",
    ADMIN_PREFIX: "admin API",
}


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
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(reject_nul_in_url)],
    )
    app.add_exception_handler(Problem, handle_problem)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)

    # Probes first: routes are matched in order, and /healthz last of ~100 routes spent
    # 39% of its time matching (py-spy).
    app.include_router(ops_router)
    pa = APIRouter(prefix=PA_PREFIX)
    pa.include_router(messages_pa)
    pa.include_router(profiles_pa)
    pa.include_router(services_pa)
    app.include_router(pa)
    app.include_router(services_admin, prefix=ADMIN_PREFIX)
    app.include_router(auth_citizen)
    app.include_router(auth_oidc)
    app.include_router(profiles_citizen)
    app.include_router(profiles_email)
    app.include_router(catalog_public)
    app.include_router(messages_citizen)
    app.include_router(notifications_citizen)

    documents: dict[str, dict[str, Any]] = {}

    def serve_openapi(prefix: str, title: str) -> None:
        async def surface_openapi() -> JSONResponse:
            if prefix not in documents:
                documents[prefix] = _surface_openapi(app, prefix, title)
            return JSONResponse(documents[prefix])

        app.add_api_route(f"{prefix}/openapi.json", surface_openapi, include_in_schema=False)

    for prefix, title in SURFACES.items():
        serve_openapi(prefix, title)

    @app.get("/api/info", include_in_schema=False)
    async def info(request: Request) -> dict[str, str]:
        return {"name": "civio", "version": civio.__version__}

    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


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
