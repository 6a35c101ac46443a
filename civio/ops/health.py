"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from civio.core.problems import DATABASE_RETRY_AFTER_SECONDS, Problem
from civio.core.runtime import get_runtime

router = APIRouter(tags=["ops"], include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no dependency checked)."""
    return {"status": "ok"}


# A probe answers within this bound even when the database hangs or the pool is exhausted:
# a load balancer's probe that times out tells it less than a 503.
READY_CHECK_SECONDS = 3.0


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and the schema is migrated; 503 (with Retry-After)
    while it does not, and ready again by itself once it does."""
    try:
        async with (
            asyncio.timeout(READY_CHECK_SECONDS),
            get_runtime(request).engine.connect() as connection,
        ):
            await connection.execute(text("SELECT 1 FROM alembic_version"))
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "reason": type(exc).__name__},
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics; with ``CIVIO_METRICS_TOKEN`` set, only for ``Bearer <token>``
    (request rates per route and queue figures tell an outsider how the platform is used)."""
    token = get_runtime(request).settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Problem(
                401,
                "Unauthorized",
                "Missing or wrong metrics token.",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
