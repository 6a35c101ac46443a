"""ID token checks and claim mapping, on tokens the tests sign themselves.

The real provider only ever issues good tokens; these are the bad ones it never would.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from civio.auth.oidc import (
    LoginFailed,
    identity_from_claims,
    merge_userinfo,
    needs_userinfo,
    new_state,
    requested_level,
    spid_level,
    validate_id_token,
)

ISSUER = "https://idp.example.org"
CLIENT = "civio"
NONCE = "n-0S6_WzA2Mj"
ACCESS_TOKEN = "an-access-token"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
KEYS = KeySet([KEY])


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "subject-1",
        "aud": CLIENT,
        "exp": now + 300,
        "iat": now,
        "nonce": NONCE,
        "at_hash": create_half_hash(ACCESS_TOKEN, "RS256").decode(),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = KEY, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": "k1"}, payload, key, algorithms=[alg])


def check(token: str, **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "issuer": ISSUER,
        "client_id": CLIENT,
        "nonce": NONCE,
        "access_token": ACCESS_TOKEN,
        "algorithms": ["RS256"],
    }
    params.update(overrides)
    return validate_id_token(token, KEYS, **params)


def test_a_good_id_token_gives_its_claims() -> None:
    assert check(sign(claims(aud=[CLIENT])))["sub"] == "subject-1"


def test_an_altered_payload_breaks_the_signature() -> None:
    header, payload, signature = sign(claims()).split(".")
    other = sign(claims(sub="someone-else")).split(".")[1]
    with pytest.raises(LoginFailed, match="signature"):
        check(f"{header}.{other}.{signature}")
    assert payload != other


def test_a_token_signed_by_another_key_is_refused() -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
    with pytest.raises(LoginFailed, match="signature"):
        check(sign(claims(), key=impostor))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://evil.example.org"},
        {"aud": "another-client"},
        {"aud": ["another-client", CLIENT], "azp": "another-client"},
        {"exp": int(time.time()) - 3600},
        {"iat": int(time.time()) + 3600},
        {"nonce": "another-nonce"},
        {"nonce": None},
        {"sub": None},
        {"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"},
    ],
    ids=["iss", "aud", "azp", "exp", "iat", "nonce", "no-nonce", "no-sub", "at_hash"],
)
def test_a_token_with_wrong_claims_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(LoginFailed) as failure:
        check(sign(claims(**changes)))
    assert failure.value.code == "ID_TOKEN_INVALID"


def test_symmetric_and_unsigned_tokens_are_refused() -> None:
    secret = OctKey.generate_key(256)
    with pytest.raises(LoginFailed):
        check(sign(claims(), key=secret, alg="HS256"))
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    payload = sign(claims()).split(".")[1]
    with pytest.raises(LoginFailed):
        check(f"{header}.{payload}.")


def spid_claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "s",
        "fiscal_number": "TINIT-RSSMRA80A01H501U",
        "given_name": "Mario",
        "family_name": "Rossi",
        "email": "mario@example.org",
        "birthdate": "1980-01-01",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_identity_from_spid_claims() -> None:
    identity = identity_from_claims(spid_claims(fiscal_number="tinit-rssmra80a01h501u"))
    assert identity.fiscal_code == "RSSMRA80A01H501U"
    assert (identity.name, identity.family_name) == ("Mario", "Rossi")
    assert identity.spid_email == "mario@example.org"
    assert identity.date_of_birth == "1980-01-01"
    eidas = spid_claims(fiscal_number=None)
    eidas["https://attributes.eid.gov.it/fiscal_number"] = "TINIT-RSSMRA80A01H501U"
    assert identity_from_claims(eidas).fiscal_code == "RSSMRA80A01H501U"


@pytest.mark.parametrize(
    "changes",
    [
        {"fiscal_number": None},
        {"fiscal_number": "TINIT-12345678901"},
        {"fiscal_number": "TINIT-RSSMRA80A01H501"},
        {"given_name": None},
        {"family_name": "  "},
    ],
)
def test_an_identity_without_fiscal_code_or_names_fails(changes: dict[str, Any]) -> None:
    with pytest.raises(LoginFailed) as failure:
        identity_from_claims(spid_claims(**changes))
    assert failure.value.code == "IDENTITY_INVALID"


def test_optional_claims_that_do_not_parse_are_dropped() -> None:
    identity = identity_from_claims(spid_claims(email="not an email", birthdate="01/01/1980"))
    assert identity.spid_email is None
    assert identity.date_of_birth is None


def test_userinfo_fills_gaps_and_must_be_about_the_same_subject() -> None:
    id_claims = {"sub": "s", "acr": "https://www.spid.gov.it/SpidL2"}
    assert needs_userinfo(id_claims)
    assert not needs_userinfo(spid_claims())
    merged = merge_userinfo(id_claims, spid_claims(given_name="Maria"))
    assert merged["given_name"] == "Maria"
    assert merged["acr"] == "https://www.spid.gov.it/SpidL2"
    with pytest.raises(LoginFailed):
        merge_userinfo(id_claims, spid_claims(sub="another"))


def test_spid_level_is_the_asserted_one_and_not_below_the_request() -> None:
    l1, l2, l3 = (f"https://www.spid.gov.it/SpidL{n}" for n in (1, 2, 3))
    assert spid_level(l3, None) == l3
    assert spid_level(None, None) == l2
    assert spid_level("urn:some:other:acr", l2) == l2
    assert spid_level(l3, l2) == l3
    with pytest.raises(LoginFailed) as failure:
        spid_level(l2, l3)
    assert failure.value.code == "AUTH_LEVEL_TOO_LOW"
    assert spid_level(l1, l1) == l1


def test_the_state_carries_the_requested_level() -> None:
    assert requested_level(new_state("SpidL3")) == "https://www.spid.gov.it/SpidL3"
    assert requested_level(new_state(None)) is None
    assert new_state(None) != new_state(None)
