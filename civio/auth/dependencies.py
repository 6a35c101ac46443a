"""``Authorization: Bearer <token>`` for the citizen surfaces: 401 with no body otherwise."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from civio.auth.service import AuthenticatedCitizen, resolve_token
from civio.core.runtime import get_runtime

# Declared on every citizen route: IO answers a missing or dead token with a bare 401.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or expired token (no body)."}
}

bearer = HTTPBearer(auto_error=False, scheme_name="Bearer")


class Unauthorized(HTTPException):
    empty_body = True

    def __init__(self) -> None:
        super().__init__(401, headers={"WWW-Authenticate": "Bearer"})


async def current_citizen(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> AuthenticatedCitizen:
    if credentials is None or not credentials.credentials:
        raise Unauthorized
    runtime = get_runtime(request)
    async with runtime.sessions() as session:
        citizen = await resolve_token(session, runtime.keyring, credentials.credentials)
    if citizen is None:
        raise Unauthorized
    return citizen


Citizen = Annotated[AuthenticatedCitizen, Depends(current_citizen)]
