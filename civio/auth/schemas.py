from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints, field_validator

from civio.core.types import (
    FiscalCode,
    IOModel,
    NoControlOrBidi,
    NonEmptyString,
    has_control_or_bidi,
    without_control_or_bidi,
)

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
    """What the identity provider asserted at login (stored encrypted with the session).

    A provider's signed claims are taken, not refused, but without control or bidi
    formatting characters: the names end up in mail and on screens, where those characters
    make one name read as another. An email holding them is dropped.
    """

    fiscal_code: str
    name: str
    family_name: str
    spid_email: str | None = None
    date_of_birth: str | None = None

    @field_validator("name", "family_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return without_control_or_bidi(value)

    @field_validator("spid_email")
    @classmethod
    def _plain_email(cls, value: str | None) -> str | None:
        return None if value is None or has_control_or_bidi(value) else value


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
