"""IO's string formats as Pydantic types (regexes from @pagopa/ts-commons).

Bounds follow IO's codecs: inclusive on both ends; a ``pattern`` replaces length bounds.
Models are strict (no "12" → 12 coercion) and drop unknown properties, as IO's exact
codecs do.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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

# --- characters a text may hold --------------------------------------------------------------
# NUL cannot be stored in PostgreSQL text, and a lone surrogate cannot be encoded as UTF-8:
# no string of any body holds them. Control characters break a mail header or a log line;
# bidi embeddings, overrides and isolates make an address or a name read as another one.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_OR_BIDI = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _refuse(pattern: re.Pattern[str], kind: str, expected: str) -> AfterValidator:
    def check(value: str) -> str:
        if pattern.search(value):
            raise PydanticCustomError(kind, expected)
        return value

    return AfterValidator(check)


NoControl = _refuse(_CONTROL, "string_control", "string without control characters")
NoControlButLayout = _refuse(
    _CONTROL_BUT_LAYOUT,
    "string_control",
    "string without control characters other than tab, line feed and carriage return",
)
NoControlOrBidi = _refuse(
    _CONTROL_OR_BIDI,
    "string_control",
    "string without control or bidirectional formatting characters",
)


def without_control_or_bidi(value: str) -> str:
    """The text with control and bidi formatting characters removed: for values civio takes
    as given (an identity provider's signed claims) rather than refuses."""
    return _CONTROL_OR_BIDI.sub("", value)


def has_control_or_bidi(value: str) -> bool:
    return _CONTROL_OR_BIDI.search(value) is not None


# A name shown to people (a service, an organisation, a citizen): one plain line.
Name = Annotated[str, StringConstraints(strict=True, min_length=1), NoControlOrBidi]


def _check_storable(value: object) -> None:
    """Walk a validated value (str, number, list, dict) for what no column can hold; nested
    models are skipped, as they checked their own fields."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise PydanticCustomError(
                "string_unstorable", "string without NUL or unpaired surrogate characters"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("finite_number", "finite number")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key)
            _check_storable(item)


def _check_cidr(value: str) -> str:
    address = value.split("/")[0]
    if any(int(octet) > 255 for octet in address.split(".")):
        raise ValueError("each octet must be at most 255")
    return value


CIDR = Annotated[
    str, StringConstraints(strict=True, pattern=CIDR_PATTERN), AfterValidator(_check_cidr)
]


def parse_timestamp(value: str) -> datetime:
    """IO's ``UTCISODateFromString``: strict ISO 8601 with time; naive means UTC.

    The UTC instant must fall within years 1 to 9999 (what a ``datetime`` holds):
    ``9999-12-31T23:00:00-05:00`` is in year 10000 once converted, and is refused.
    """
    if not TIMESTAMP_RE.match(value):
        raise ValueError("not an ISO 8601 timestamp with time (e.g. 2018-10-13T00:00:00.000Z)")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("not a time between years 1 and 9999 once converted to UTC") from None


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
    """Strict, exact-codec base: unknown properties are dropped, not rejected.

    Every field (and any extra property a subclass allows) is refused when it holds what
    cannot be stored or rendered: NUL or lone surrogates in a string, NaN or an infinity in a
    number (Python's JSON parser accepts both), so bad input is a 400 at the door rather than
    a 500 at the database.
    """

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_field(cls, value: Any) -> Any:
        _check_storable(value)
        return value

    @model_validator(mode="after")
    def _storable_extras(self) -> IOModel:
        if self.model_extra:
            _check_storable(self.model_extra)
        return self


def is_fiscal_code(value: str) -> bool:
    return re.match(FISCAL_CODE_PATTERN, value) is not None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[^@\s\"(),:;<>\[\]\\]+@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,}}$"
# IO's EmailString: validator.isEmail with a top-level domain required.
EmailString = Annotated[
    str, StringConstraints(strict=True, pattern=EMAIL_PATTERN, max_length=254), NoControlOrBidi
]
