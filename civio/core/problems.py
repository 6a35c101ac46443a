"""RFC 7807 problems with IO's titles, and the one place that renders them.

Domain code raises ``Problem``; expected outcomes (404, 409, 429) never become 500s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from civio.core.db_unavailable import is_database_unavailable

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        type_: str | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.type = type_

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"title": self.title, "status": self.status}
        if self.detail:
            payload["detail"] = self.detail
        if self.type:
            payload["type"] = self.type
        return payload


def problem_response(problem: Problem) -> Response:
    return Response(
        content=json.dumps(problem.body()),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


# --- IO's standard problems -------------------------------------------------------------

NOT_ALLOWED_HERE = "You are not allowed here"
NOT_ALLOWED_DETAIL = "You do not have enough permission to complete the operation you requested"


def forbidden(detail: str = NOT_ALLOWED_DETAIL, title: str = NOT_ALLOWED_HERE) -> Problem:
    return Problem(403, title, detail)


def not_found(title: str, detail: str) -> Problem:
    return Problem(404, title, detail)


# --- validation errors in IO's reporter format ---------------------------------------------


def _constraint(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = str(error.get("type", ""))
    if kind in ("string_too_short", "string_too_long"):
        return f"string of length within bounds ({error.get('msg')})"
    if "pattern" in ctx:
        return f"string matching the pattern {ctx['pattern']}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"integer within bounds ({error.get('msg')})"
    if kind == "missing":
        return "required value"
    return str(error.get("msg", "value"))


def describe_errors(errors: Sequence[Mapping[str, Any]], *, skip: int = 1) -> str:
    """One line per error: ``value "x" at root.content.subject is not a valid [...]``."""
    lines = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())][skip:]
        path = ".".join(["root", *loc])
        value = error.get("input")
        shown = "undefined" if error.get("type") == "missing" else _short_json(value)
        lines.append(f"value {shown} at {path} is not a valid [{_constraint(error)}]")
    return "\n".join(lines)


def _short_json(value: object) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validation_problem(request: Request, exc: RequestValidationError) -> Problem:
    """Map FastAPI's validation failure to IO's 400 title for the route's payload type."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return Problem(400, "Invalid JSON", "The request body is not valid JSON.")
    route = request.scope.get("route")
    titles: Mapping[str, str] = getattr(route, "openapi_extra", None) or {}
    body_errors = [e for e in errors if e.get("loc", ("",))[0] == "body"]
    if body_errors:
        title = str(titles.get("x-civio-body-title", "Invalid request body"))
        return Problem(400, title, describe_errors(body_errors))
    first = errors[0] if errors else {}
    loc = first.get("loc", ("", ""))
    name = str(loc[-1]) if loc else "parameter"
    param_titles: object = titles.get("x-civio-param-titles", {})
    title = param_titles.get(name, f"Invalid {name}") if isinstance(param_titles, dict) else name
    return Problem(400, str(title), describe_errors(errors))


async def handle_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def handle_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(request, exc))


async def handle_http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 401 and getattr(exc, "empty_body", False):
        # IO's citizen surfaces answer a missing or dead bearer token with a bare 401.
        return Response(status_code=401, headers=dict(exc.headers or {}))
    titles = {
        401: "Unauthorized",
        404: "Not Found",
        405: "Method Not Allowed",
        413: "Request entity too large",
    }
    title = titles.get(exc.status_code, str(exc.detail))
    detail = str(exc.detail) if exc.detail != title else ""
    return problem_response(
        Problem(exc.status_code, title, detail, headers=dict(exc.headers or {}))
    )


# How long a client is asked to wait while the database is unreachable: a restart or a
# failover takes seconds.
DATABASE_RETRY_AFTER_SECONDS = 5


def database_unavailable() -> Problem:
    return Problem(
        503,
        "Service temporarily unavailable",
        "The database cannot be reached at the moment; retry later.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def handle_database_error(request: Request, exc: Exception) -> Response:
    """Registered for the driver's exception classes (``DATABASE_ERRORS``): an outage is a
    503 the client may retry, anything else the usual 500. Only the exception's type is
    logged: a database error's text carries the statement's bound parameters."""
    if not is_database_unavailable(exc):
        return await handle_unexpected(request, exc)
    structlog.get_logger(__name__).warning("http.database_unavailable", error=type(exc).__name__)
    return problem_response(database_unavailable())


async def handle_unexpected(_: Request, exc: Exception) -> Response:
    """The last resort: logged with a scrubbed traceback, answered with a bare 500. It runs
    outside every middleware, so it sets the headers every response carries itself."""
    from civio.core.logging import safe_traceback

    structlog.get_logger(__name__).error(
        "http.unhandled", error=type(exc).__name__, traceback=safe_traceback(exc)
    )
    problem = Problem(
        500,
        "Internal server error",
        "An unexpected error occurred.",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )
    return problem_response(problem)


# --- OpenAPI declarations ------------------------------------------------------------------


class ProblemJson(BaseModel):
    type: str | None = None
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


_DESCRIPTIONS = {
    400: "Invalid request.",
    401: "Missing or unknown subscription key.",
    403: "Forbidden.",
    404: "Not found.",
    409: "Conflict.",
    413: "Request body too large.",
    429: "Too many requests.",
    500: "Internal server error.",
    503: "Temporarily unavailable (the database cannot be reached); see Retry-After.",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {
            "description": _DESCRIPTIONS.get(code, "Error."),
            "model": ProblemJson,
            "content": {PROBLEM_JSON: {}},
        }
        for code in codes
    }
