"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from civio.core.problems import Problem
from civio.core.runtime import get_runtime

router = APIRouter(tags=["ops"], include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no dependency checked)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and the schema is migrated."""
    try:
        async with get_runtime(request).engine.connect() as connection:
            await connection.execute(text("SELECT 1 FROM alembic_version"))
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "reason": type(exc).__name__}, status_code=503
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
