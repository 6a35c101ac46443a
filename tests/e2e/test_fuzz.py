"""Fuzzing over a real socket: no input to any served OpenAPI document makes civio answer
5xx, and the PA API's answers follow IO's own spec."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import CheckContext, CheckFunction, not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import response_schema_conformance

from civio.app import ADMIN_PREFIX, PA_PREFIX, SURFACES
from civio.core.config import Settings
from tests.e2e.conftest import LiveServer
from tests.factories import random_fiscal_code

ALL_GROUPS = [
    "ApiMessageWrite",
    "ApiMessageRead",
    "ApiLimitedProfileRead",
    "ApiSubscriptionsFeedRead",
    "ApiServiceWrite",
    "ApiMessageWriteWithPayee",
    "ApiMessageWriteAdvanced",
    "ApiMessageReadAdvanced",
    "ApiMessageWriteEUCovidCert",
    "ApiThirdPartyMessageWrite",
    "ApiNoRateLimit",
]
IO_SPEC = Path(__file__).resolve().parents[1] / "contracts" / "io-pa-api.yaml"
IMPLEMENTED = (
    "submitMessageforUser",
    "submitMessageforUserWithFiscalCodeInBody",
    "getMessage",
    "getProfile",
    "getProfileByPOST",
    "getSubscriptionsFeedForDate",
    "getServiceActivationByPOST",
    "upsertServiceActivation",
    "uploadOrganizationLogo",
)


@pytest.fixture(scope="session")
def fuzz_key(live_server: LiveServer) -> str:
    service = live_server.create_service(
        groups=ALL_GROUPS, max_allowed_payment_amount=100000, special=True
    )
    return str(service["primary_key"])


@pytest.fixture(scope="session")
def io_schema() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_path(str(IO_SPEC)).include(operation_id=list(IMPLEMENTED))


# Bounded: every served operation (~40 of them) gets a few examples each, and the whole module
# stays well under a minute. A deeper run: CIVIO_FUZZ_EXAMPLES=200 make test (or pytest).
SERVED_EXAMPLES = int(os.environ.get("CIVIO_FUZZ_EXAMPLES", "10"))
LOGIN_NOT_CONFIGURED = "Login not configured"
IO_SPEC_EXAMPLES = int(os.environ.get("CIVIO_FUZZ_EXAMPLES", "15"))

# How each surface is called; a surface added to civio.app.SURFACES without an entry here
# fails test_every_surface_is_fuzzed.
CREDENTIALS = {
    PA_PREFIX: "pa_key",
    "/api/auth/v1": "citizen",
    "/api/identity/v1": "citizen",
    "/api/communication/v1": "citizen",
    "/api/catalog/v1": "public",
    ADMIN_PREFIX: "admin",
}


def settings_for(examples: int) -> Any:
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


class Credentials:
    """The headers each surface wants, fetched from the live server as a client would."""

    def __init__(self, live_server: LiveServer, settings: Settings, pa_key: str) -> None:
        self.live_server = live_server
        self.settings = settings
        self.pa_key = pa_key

    def citizen_token(self) -> str:
        login = httpx.post(
            f"{self.live_server.url}/api/auth/v1/test-login",
            json={
                "username": random_fiscal_code(),
                "password": self.settings.test_login_password,
            },
        )
        login.raise_for_status()
        return str(login.json()["token"])

    def headers(self, prefix: str) -> dict[str, str]:
        """Fresh for each call: a fuzzed logout ends only the token it was given."""
        kind = CREDENTIALS[prefix]
        if kind == "pa_key":
            return {"Ocp-Apim-Subscription-Key": self.pa_key}
        if kind == "admin":
            return {"Authorization": f"Bearer {self.live_server.admin_token}"}
        if kind == "citizen":
            return {"Authorization": f"Bearer {self.citizen_token()}"}
        return {}


@pytest.fixture(scope="session")
def credentials(live_server: LiveServer, settings: Settings, fuzz_key: str) -> Credentials:
    return Credentials(live_server, settings, fuzz_key)


def no_server_error(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Any 5xx fails, except the one civio declares on purpose: the citizen login answers
    503 "Login not configured" on a server without an OpenID provider (this one)."""
    if response.status_code == 503 and LOGIN_NOT_CONFIGURED in response.text:
        return None
    return not_a_server_error(ctx, response, case)


def fuzz_operation(
    operation: APIOperation,
    base_url: str,
    checks: list[CheckFunction],
    headers: dict[str, str],
    examples: int,
    test_login_password: str,
) -> None:
    @given(case=operation.as_strategy())
    @settings_for(examples)
    def call(case: schemathesis.Case) -> None:
        if operation.path == "/test-login" and isinstance(case.body, dict):
            # Fuzz the identity behind the password, not the password throttle: a wrong
            # password is one answer, and throttling it would end the other logins.
            case.body["password"] = test_login_password
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

    call()


def fuzz(
    schema: schemathesis.BaseSchema,
    live_server: LiveServer,
    checks: list[CheckFunction],
    *,
    prefix: str,
    headers: Callable[[], dict[str, str]],
    examples: int,
    test_login_password: str,
) -> list[str]:
    """Run hypothesis over every operation of ``schema``; return the operations fuzzed."""
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzz_operation(
            operation,
            f"{live_server.url}{prefix}",
            checks,
            headers(),
            examples,
            test_login_password,
        )
        fuzzed.append(operation.label)
    return fuzzed


def test_every_surface_is_fuzzed() -> None:
    assert set(CREDENTIALS) == set(SURFACES)


@pytest.mark.parametrize("prefix", list(CREDENTIALS))
def test_served_openapi_finds_no_server_error(
    live_server: LiveServer, settings: Settings, credentials: Credentials, prefix: str
) -> None:
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}{prefix}/openapi.json", headers=credentials.headers(prefix)
    )
    fuzzed = fuzz(
        schema,
        live_server,
        [no_server_error],
        prefix=prefix,
        headers=lambda: credentials.headers(prefix),
        examples=SERVED_EXAMPLES,
        test_login_password=settings.test_login_password,
    )
    served = httpx.get(
        f"{live_server.url}{prefix}/openapi.json", headers=credentials.headers(prefix)
    ).json()
    operations = [
        f"{method.upper()} {path}"
        for path, item in served["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    ]
    # Every operation the surface documents was called, none skipped.
    assert sorted(fuzzed) == sorted(operations)


def test_ios_own_spec_finds_no_server_error_and_conforming_bodies(
    live_server: LiveServer,
    settings: Settings,
    credentials: Credentials,
    io_schema: schemathesis.BaseSchema,
) -> None:
    fuzzed = fuzz(
        io_schema,
        live_server,
        [no_server_error, response_schema_conformance],
        prefix=PA_PREFIX,
        headers=lambda: credentials.headers(PA_PREFIX),
        examples=IO_SPEC_EXAMPLES,
        test_login_password=settings.test_login_password,
    )
    assert len(fuzzed) == len(IMPLEMENTED)
