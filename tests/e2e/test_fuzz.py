"""Fuzzing over a real socket: no input makes civio answer 500, and answers follow IO's spec."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from civio.core.config import Settings
from tests.e2e.conftest import LiveServer

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
def civio_schema(live_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")


@pytest.fixture(scope="session")
def io_schema() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_path(str(IO_SPEC)).include(operation_id=list(IMPLEMENTED))


FUZZ = hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def fuzz(
    schema: schemathesis.BaseSchema,
    live_server: LiveServer,
    key: str,
    checks: list[schemathesis.CheckFunction],
    *,
    prefix: str = "/api/v1",
    headers: dict[str, str] | None = None,
) -> list[str]:
    """Run hypothesis over every operation of ``schema``; return the operations fuzzed."""
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @FUZZ
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=f"{live_server.url}{prefix}",
                headers=headers or {"Ocp-Apim-Subscription-Key": key},
                checks=checks,
            )

        call()
        fuzzed.append(operation.label)
    return fuzzed


def test_served_openapi_finds_no_server_error(
    live_server: LiveServer, fuzz_key: str, civio_schema: schemathesis.BaseSchema
) -> None:
    fuzzed = fuzz(civio_schema, live_server, fuzz_key, [not_a_server_error])
    assert len(fuzzed) == len(IMPLEMENTED)


def test_ios_own_spec_finds_no_server_error_and_conforming_bodies(
    live_server: LiveServer, fuzz_key: str, io_schema: schemathesis.BaseSchema
) -> None:
    fuzzed = fuzz(
        io_schema, live_server, fuzz_key, [not_a_server_error, response_schema_conformance]
    )
    assert len(fuzzed) == len(IMPLEMENTED)


def test_identity_surface_finds_no_server_error(
    live_server: LiveServer, settings: Settings
) -> None:
    login = httpx.post(
        f"{live_server.url}/api/auth/v1/test-login",
        json={"username": "FZZFZZ80A01H501Z", "password": settings.test_login_password},
    )
    token = login.json()["token"]
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/identity/v1/openapi.json")
    fuzzed = fuzz(
        schema,
        live_server,
        "",
        [not_a_server_error],
        prefix="/api/identity/v1",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert len(fuzzed) >= 4
