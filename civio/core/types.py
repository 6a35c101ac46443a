"""IO's string formats as Pydantic types (regexes from @pagopa/ts-commons).

Bounds follow IO's codecs: inclusive on both ends; a ``pattern`` replaces length bounds.
Models are strict (no "12" → 12 coercion) and drop unknown properties, as IO's exact
codecs do.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

FISCAL_CODE_PATTERN = (
    r"^[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$"
)
ORGANIZATION_FISCAL_CODE_PATTERN = r"^[0-9]{11}$"
ULID_PATTERN = r"^[0-9a-hjkmnp-tv-zA-HJKMNP-TV-Z]{26}$"
NOTICE_NUMBER_PATTERN = r"^[0123][0-9]{17}$"
CIDR_PATTERN = r"^([0-9]{1,3}[.]){3}[0-9]{1,3}(/([0-9]|[1-2][0-9]|3[0-2]))?$"
TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$",
)

FiscalCode = Annotated[str, StringConstraints(strict=True, pattern=FISCAL_CODE_PATTERN)]
OrganizationFiscalCode = Annotated[
    str, StringConstraints(strict=True, pattern=ORGANIZATION_FISCAL_CODE_PATTERN)
]
Ulid = Annotated[str, StringConstraints(strict=True, pattern=ULID_PATTERN)]
NonEmptyString = Annotated[str, StringConstraints(strict=True, min_length=1)]


def _check_cidr(value: str) -> str:
    address = value.split("/")[0]
    if any(int(octet) > 255 for octet in address.split(".")):
        raise ValueError("each octet must be at most 255")
    return value


CIDR = Annotated[
    str, StringConstraints(strict=True, pattern=CIDR_PATTERN), AfterValidator(_check_cidr)
]


def parse_timestamp(value: str) -> datetime:
    """IO's ``UTCISODateFromString``: strict ISO 8601 with time; naive means UTC."""
    if not TIMESTAMP_RE.match(value):
        raise ValueError("not an ISO 8601 timestamp with time (e.g. 2018-10-13T00:00:00.000Z)")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """JavaScript ``toISOString()``: ``2018-10-13T00:00:00.000Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _normalise_timestamp(value: str) -> str:
    return format_timestamp(parse_timestamp(value))


Timestamp = Annotated[
    str,
    StringConstraints(strict=True),
    AfterValidator(_normalise_timestamp),
    Field(json_schema_extra={"format": "date-time"}),
]


class IOModel(BaseModel):
    """Strict, exact-codec base: unknown properties are dropped, not rejected."""

    model_config = ConfigDict(strict=True, extra="ignore")


def is_fiscal_code(value: str) -> bool:
    return re.match(FISCAL_CODE_PATTERN, value) is not None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[^@\s\"(),:;<>\[\]\\]+@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,}}$"
# IO's EmailString: validator.isEmail with a top-level domain required.
EmailString = Annotated[str, StringConstraints(strict=True, pattern=EMAIL_PATTERN, max_length=254)]
