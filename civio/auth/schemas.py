from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints

from civio.core.types import FiscalCode, IOModel, NoControlOrBidi, NonEmptyString

SPID_LEVELS = (
    "https://www.spid.gov.it/SpidL1",
    "https://www.spid.gov.it/SpidL2",
    "https://www.spid.gov.it/SpidL3",
)


PersonName = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=200), NoControlOrBidi
]
AssertedEmail = Annotated[str, StringConstraints(strict=True, max_length=320), NoControlOrBidi]


class PasswordLogin(IOModel):
    username: FiscalCode
    password: NonEmptyString
    # civio extensions: the identity a real provider would assert.
    name: PersonName | None = None
    family_name: PersonName | None = None
    email: AssertedEmail | None = None


class AccessToken(BaseModel):
    token: str


class PublicSession(BaseModel):
    spidLevel: str | None = None
    expirationDate: str | None = None


class SuccessResponse(BaseModel):
    message: str


class Identity(BaseModel):
    """What the identity provider asserted at login (stored encrypted with the session)."""

    fiscal_code: str
    name: str
    family_name: str
    spid_email: str | None = None
    date_of_birth: str | None = None


class UserIdentityWithTtl(BaseModel):
    fiscal_code: str
    name: str
    family_name: str
    date_of_birth: str
    spid_level: str
    spid_email: str | None = None
    spid_idp: str | None = None
    created_at: float
    token_remaining_ttl: int
