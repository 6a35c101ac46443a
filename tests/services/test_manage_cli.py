"""``civio owner …`` and ``civio service review …``: the operator's side of management."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from civio.cli import app
from civio.core.config import Settings
from tests.factories import ADMIN, cli_env
from tests.services.manage_support import MANAGE, Manager, assert_conforms, create, submit

runner = CliRunner()


@pytest.fixture
def civio(settings: Settings):  # type: ignore[no-untyped-def]
    env = cli_env(settings)

    async def run(*args: str, code: int = 0) -> Any:
        # In a thread: the command runs its own event loop (asyncio.run), as from a shell.
        result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
        assert result.exit_code == code, result.output
        return json.loads(result.stdout) if code == 0 and "--json" in args else result.output

    return run


def email() -> str:
    return f"ente-{uuid.uuid4().hex[:12]}@comune.example.it"


async def test_an_owner_is_created_with_manage_keys_shown_once(
    civio: Any, client: httpx.AsyncClient
) -> None:
    address = email()
    owner = await civio("owner", "create", "--email", address, "--json")
    assert owner["email"] == address
    assert len(owner["primary_key"]) == 64
    assert owner["primary_key"] != owner["secondary_key"]
    headers = {"Ocp-Apim-Subscription-Key": owner["secondary_key"]}
    assert (await client.get(f"{MANAGE}/services", headers=headers)).status_code == 200
    # The keys are not shown again: a second create is refused, nothing is replaced.
    again = await civio("owner", "create", "--email", address, code=1)
    assert "already" in again
    assert (await client.get(f"{MANAGE}/services", headers=headers)).status_code == 200
    await civio("owner", "create", "--email", "not an email", code=2)


async def test_a_manage_key_is_regenerated_alone(civio: Any, client: httpx.AsyncClient) -> None:
    owner = await civio("owner", "create", "--email", email(), "--json")
    renewed = await civio(
        "owner", "keys", "regenerate", owner["id"], "--key", "secondary", "--json"
    )
    assert set(renewed) == {"id", "email", "secondary_key"}
    old = {"Ocp-Apim-Subscription-Key": owner["secondary_key"]}
    new = {"Ocp-Apim-Subscription-Key": renewed["secondary_key"]}
    kept = {"Ocp-Apim-Subscription-Key": owner["primary_key"]}
    assert (await client.get(f"{MANAGE}/services", headers=old)).status_code == 401
    assert (await client.get(f"{MANAGE}/services", headers=new)).status_code == 200
    assert (await client.get(f"{MANAGE}/services", headers=kept)).status_code == 200
    await civio("owner", "keys", "regenerate", owner["id"], "--key", "tertiary", code=2)
    await civio("owner", "keys", "regenerate", "01JDXZ2T5G8Q4K7W3M6N9P1R2S", code=1)


async def test_the_operator_reviews_from_the_command_line(
    civio: Any, client: httpx.AsyncClient, settings: Settings
) -> None:
    owner = await civio("owner", "create", "--email", email(), "--json")
    who = Manager(owner["id"], owner["primary_key"], owner["secondary_key"])
    sid = (await create(client, who))["id"]
    # Not submitted: nothing to decide.
    assert "Conflict" in await civio("service", "review", "approve", sid, code=1)
    await submit(client, who, sid, auto_publish=False)
    rejected = await civio(
        "service", "review", "reject", sid, "--reason", "Manca l'informativa", "--json"
    )
    assert rejected["status"] == {"value": "rejected", "reason": "Manca l'informativa"}
    assert_conforms(rejected, "CmsServiceLifecycle")
    await civio("service", "review", "reject", sid, "--reason", " ", code=2)

    await client.put(
        f"{MANAGE}/services/{sid}", json=rejected_payload(rejected), headers=who.headers
    )
    await submit(client, who, sid, auto_publish=True)
    approved = await civio("service", "review", "approve", sid, "--json")
    assert approved["status"] == {"value": "approved"}
    assert approved["max_allowed_payment_amount"] == settings.max_allowed_payment_amount
    release = await client.get(f"{MANAGE}/services/{sid}/release", headers=who.headers)
    assert release.json()["status"] == "published"
    history = (await client.get(f"{MANAGE}/services/{sid}/history", headers=who.headers)).json()
    reasons = [i["status"].get("reason") for i in history["items"]]
    assert "Manca l'informativa" in reasons


def rejected_payload(shown: dict[str, Any]) -> dict[str, Any]:
    """The service as shown, back as a payload (``topic`` → ``topic_id``)."""
    metadata = {k: v for k, v in shown["metadata"].items() if k != "topic"}
    metadata["topic_id"] = shown["metadata"]["topic"]["id"]
    body = {k: v for k, v in shown.items() if k not in ("id", "status", "last_update")}
    return body | {"metadata": metadata}


async def test_the_admin_api_creates_owners_and_renews_their_keys(
    client: httpx.AsyncClient,
) -> None:
    address = email()
    created = await client.post("/admin/v1/owners", json={"email": address}, headers=ADMIN)
    assert created.status_code == 201, created.text
    owner = created.json()
    assert owner["email"] == address
    headers = {"Ocp-Apim-Subscription-Key": owner["primary_key"]}
    assert (await client.get(f"{MANAGE}/services", headers=headers)).status_code == 200
    again = await client.post("/admin/v1/owners", json={"email": address}, headers=ADMIN)
    assert again.status_code == 409
    bad = await client.post("/admin/v1/owners", json={"email": "nobody"}, headers=ADMIN)
    assert bad.status_code == 400
    renewed = await client.put(f"/admin/v1/owners/{owner['id']}/keys/primary", headers=ADMIN)
    assert renewed.status_code == 200
    assert set(renewed.json()) == {"id", "email", "primary_key"}
    assert (await client.get(f"{MANAGE}/services", headers=headers)).status_code == 401
    fresh = {"Ocp-Apim-Subscription-Key": renewed.json()["primary_key"]}
    assert (await client.get(f"{MANAGE}/services", headers=fresh)).status_code == 200
    unknown = await client.put(
        "/admin/v1/owners/01JDXZ2T5G8Q4K7W3M6N9P1R2S/keys/primary", headers=ADMIN
    )
    assert unknown.status_code == 404
