"""Keyword-only helpers that create what a test needs, through the real services."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from civio.core.config import Settings
from civio.core.db import transaction
from civio.core.queue import Worker
from civio.core.runtime import Runtime
from civio.messages.models import Message
from civio.profiles.service import create_citizen
from civio.services import service as services
from civio.services.gateway import Caller, CallerService
from civio.services.models import Owner, Service
from civio.services.schemas import ServiceCreate, ServiceMetadata

# The suite's admin token (at least MIN_ADMIN_TOKEN_LENGTH characters, as civio requires).
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

_OMOCODE_DIGITS = string.digits
_MONTHS = "ABCDEHLMPRST"


def random_fiscal_code() -> str:
    """A fiscal code matching IO's pattern (the check character is not verified)."""
    letters = "".join(random.choices(string.ascii_uppercase, k=6))
    return (
        letters
        + "".join(random.choices(_OMOCODE_DIGITS, k=2))
        + random.choice(_MONTHS)
        + "".join(random.choices(_OMOCODE_DIGITS, k=2))
        + random.choice(string.ascii_uppercase)
        + "".join(random.choices(_OMOCODE_DIGITS, k=3))
        + random.choice(string.ascii_uppercase)
    )


@dataclass
class Sender:
    service_id: str
    key: str
    secondary_key: str
    organization_fiscal_code: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Ocp-Apim-Subscription-Key": self.key}


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a ``civio`` command run by a test needs: the test's database, master
    key and data dir, and quiet logs."""
    return {
        "CIVIO_DATABASE_URL": settings.database_url,
        "CIVIO_MASTER_KEY": settings.master_key,
        "CIVIO_DATA_DIR": str(settings.data_dir),
        "CIVIO_LOG_LEVEL": "WARNING",
        **extra,
    }


def valid_message(**content: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": "Your permit is ready",
        "markdown": "Your residence permit is ready for pickup at the registry office. "
        "Bring an identity document.",
    }
    body.update(content)
    return {"content": body}


class Factory:
    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings

    async def sender(
        self,
        *,
        groups: list[str] | None = None,
        recipients: list[str] | None = None,
        cidrs: list[str] | None = None,
        max_amount: int = 0,
        special: bool = False,
        owner_email: str | None = None,
        organization_fiscal_code: str | None = None,
        require_secure_channels: bool = False,
    ) -> Sender:
        """A service; by default a production one (ApiMessageWrite) with the read groups."""
        ofc = organization_fiscal_code or "".join(random.choices(string.digits, k=11))
        async with transaction(self.runtime.sessions) as session:
            created = await services.create_service(
                session,
                ServiceCreate(
                    name="Test service",
                    organization_name="Comune di Prova",
                    organization_fiscal_code=ofc,
                    groups=groups
                    if groups is not None
                    else [
                        "ApiMessageWrite",
                        "ApiMessageRead",
                        "ApiLimitedProfileRead",
                        "ApiSubscriptionsFeedRead",
                    ],
                    authorized_recipients=recipients or [],
                    authorized_cidrs=cidrs or [],
                    max_allowed_payment_amount=max_amount,
                    require_secure_channels=require_secure_channels,
                    special=special,
                    owner_email=owner_email,
                    service_metadata=ServiceMetadata(),
                ),
                sandbox_fiscal_code=self.settings.sandbox_fiscal_code,
            )
        assert created.primary_key
        assert created.secondary_key
        return Sender(created.service_id, created.primary_key, created.secondary_key, ofc)

    async def citizen(
        self,
        fiscal_code: str | None = None,
        *,
        email: str | None = None,
        mode: str = "AUTO",
        inbox: bool = True,
        block: list[str] | None = None,
    ) -> str:
        fc = fiscal_code or random_fiscal_code()
        async with transaction(self.runtime.sessions) as session:
            await create_citizen(
                session,
                self.runtime.keyring,
                fc,
                email=email,
                mode=mode,  # type: ignore[arg-type]
                inbox=inbox,
                blocked_services=block or [],
            )
        return fc

    async def caller(self, sender: Sender) -> Caller:
        """The gateway's view of a sender, for calling domain services directly."""
        async with self.runtime.sessions() as session:
            service = await session.get(Service, sender.service_id)
            assert service is not None
            owner = await session.get_one(Owner, service.owner_id)
            return Caller(CallerService.of(service, owner), client_ip=None)

    async def drain(self) -> None:
        """Run the real worker until no job is runnable."""
        await Worker(self.runtime).run(drain=True)

    async def message_row(self, fiscal_code: str, message_id: str) -> Message:
        async with self.runtime.sessions() as session:
            row = await session.get(Message, (fiscal_code, message_id))
            assert row is not None
            return row


async def login(
    client: Any,
    settings: Settings,
    fiscal_code: str | None = None,
    *,
    name: str = "Mario",
    family_name: str = "Rossi",
    email: str | None = None,
) -> tuple[str, dict[str, str]]:
    """Log a citizen in through the real test-login; returns (fiscal code, auth headers)."""
    fc = fiscal_code or random_fiscal_code()
    body: dict[str, Any] = {
        "username": fc,
        "password": settings.test_login_password,
        "name": name,
        "family_name": family_name,
    }
    if email is not None:
        body["email"] = email
    response = await client.post("/api/auth/v1/test-login", json=body)
    assert response.status_code == 200, response.text
    return fc, {"Authorization": f"Bearer {response.json()['token']}"}


@asynccontextmanager
async def client_with(
    settings: Settings,
    runtime: Runtime,
    *,
    peer: tuple[str, int] = ("203.0.113.7", 50000),
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on an app built with other settings, sharing the test runtime."""
    from civio.app import create_app

    app = create_app(settings, runtime=runtime, run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://civio.test") as c:
            yield c


async def open_citizen(
    client: Any, settings: Settings, fiscal_code: str | None = None, **profile: Any
) -> tuple[str, dict[str, str]]:
    """Log in and accept the ToS (inbox and webhook on), setting any other profile fields."""
    fc, headers = await login(client, settings, fiscal_code)
    current = (await client.get("/api/identity/v1/profile", headers=headers)).json()
    body = {"version": current["version"], "accepted_tos_version": 1, **profile}
    updated = await client.post("/api/identity/v1/profile", json=body, headers=headers)
    assert updated.status_code == 200, updated.text
    return fc, headers
