"""Refuse a NUL character in a path or query parameter, for every route of every surface.

A percent-encoded NUL (``%00``) decodes into path ids and query values, and PostgreSQL text
cannot hold it: the query would fail with a 500. The check runs as an app-wide dependency
(after routing, before the route's own parameters), so the 400 names the parameter with
the route's own title, as any other invalid parameter does. Strings in JSON bodies are
checked by ``IOModel``.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError

NUL = "\x00"
EXPECTED = "string without NUL characters"


async def reject_nul_in_url(request: Request) -> None:
    scope = request.scope
    if NUL not in scope["path"] and b"%00" not in scope.get("query_string", b""):
        return
    errors = [
        {"type": "string_unstorable", "loc": (where, name), "msg": EXPECTED, "input": value}
        for where, items in (
            ("path", request.path_params.items()),
            ("query", request.query_params.multi_items()),
        )
        for name, value in items
        if isinstance(value, str) and NUL in value
    ]
    if not errors:  # a NUL outside any parameter (a literal path segment): still refused
        errors = [{"type": "string_unstorable", "loc": ("path", "path"), "msg": EXPECTED}]
    raise RequestValidationError(errors)
