"""What the management API's tests share: an owner with manage keys, a valid payload, a
PNG, and the check of a response against IO's own ``Cms*`` definitions."""

from __future__ import annotations

import io
import random
import string
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import yaml
from PIL import Image

from civio.core.db import transaction
from civio.services import owners
from tests.factories import ADMIN, Factory

IO_SPEC = Path(__file__).resolve().parents[1] / "contracts" / "io-pa-api.yaml"
MANAGE = "/api/v1/manage"


@cache
def definitions() -> dict[str, Any]:
    return yaml.safe_load(IO_SPEC.read_text())["definitions"]  # type: ignore[no-any-return]


def assert_conforms(instance: Any, definition: str) -> None:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions()}
    errors = [e.message for e in jsonschema_rs.Draft4Validator(schema).iter_errors(instance)]
    assert not errors, f"{definition}: {errors}"


@dataclass
class Manager:
    owner_id: str
    key: str
    secondary_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": self.key}


async def manager(factory: Factory, email: str | None = None) -> Manager:
    """A new owner with its manage keys, as ``civio owner create`` makes one."""
    address = email or f"ente-{uuid.uuid4().hex[:12]}@comune.example.it"
    async with transaction(factory.runtime.sessions) as session:
        created = await owners.create_owner(session, address)
    assert created.primary_key
    assert created.secondary_key
    return Manager(created.id, created.primary_key, created.secondary_key)


def organization_fiscal_code() -> str:
    return "".join(random.choices(string.digits, k=11))


def payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Servizi elettorali",
        "description": "Tessera elettorale, seggi e voto assistito nel Comune di Prova.",
        "organization": {
            "name": "Comune di Prova",
            "fiscal_code": organization_fiscal_code(),
            "department_name": "Ufficio elettorale",
        },
        "require_secure_channel": True,
        "authorized_recipients": [],
        "authorized_cidrs": [],
        "max_allowed_payment_amount": 0,
        "metadata": {
            "scope": "LOCAL",
            "topic_id": 12,
            "privacy_url": "https://comune.example.it/privacy",
            "email": "elettorale@comune.example.it",
        },
    }
    body.update(overrides)
    return body


def png(width: int = 600, height: int = 400) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 120, 200, 255)).save(out, format="PNG")
    return out.getvalue()


async def create(client: httpx.AsyncClient, who: Manager, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        f"{MANAGE}/services", json=payload(**overrides), headers=who.headers
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def submit(
    client: httpx.AsyncClient, who: Manager, service_id: str, *, auto_publish: bool
) -> None:
    response = await client.put(
        f"{MANAGE}/services/{service_id}/review",
        json={"auto_publish": auto_publish},
        headers=who.headers,
    )
    assert response.status_code == 204, response.text


async def approve(client: httpx.AsyncClient, service_id: str) -> httpx.Response:
    return await client.post(f"/admin/v1/services/{service_id}/approve", headers=ADMIN)


async def approved(
    client: httpx.AsyncClient, who: Manager, *, auto_publish: bool = False, **overrides: Any
) -> dict[str, Any]:
    """A service created, sent to review and approved by an operator."""
    service = await create(client, who, **overrides)
    await submit(client, who, service["id"], auto_publish=auto_publish)
    decided = await approve(client, service["id"])
    assert decided.status_code == 200, decided.text
    return service
