"""From ACCEPTED to PROCESSED or REJECTED: IO's ProcessMessage rules, and getMessage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from civio.core.db import transaction
from civio.messages.models import MessageStatusChange
from civio.messages.pipeline import process_message
from civio.profiles.models import Activation, ServicePreference
from tests.factories import Factory, Sender, random_fiscal_code, valid_message


async def send(client: httpx.AsyncClient, sender: Sender, fc: str, **content: object) -> str:
    response = await client.post(
        f"/api/v1/messages/{fc}", json=valid_message(**content), headers=sender.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def status_of(client: httpx.AsyncClient, sender: Sender, fc: str, mid: str) -> dict:  # type: ignore[type-arg]
    response = await client.get(f"/api/v1/messages/{fc}/{mid}", headers=sender.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_get_reports_accepted_until_processed_then_content(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen()
    mid = await send(client, sender, fc)
    pending = await status_of(client, sender, fc, mid)
    assert pending["status"] == "ACCEPTED"
    assert "content" not in pending["message"]
    await factory.drain()
    done = await status_of(client, sender, fc, mid)
    assert done["status"] == "PROCESSED"
    message = done["message"]
    assert message["id"] == mid
    assert message["fiscal_code"] == fc
    assert message["sender_service_id"] == sender.service_id
    assert message["feature_level_type"] == "STANDARD"
    assert message["created_at"].endswith("Z")
    assert message["content"]["subject"] == "Your permit is ready"


async def test_unknown_citizen_is_rejected_without_content(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = random_fiscal_code()
    mid = await send(client, sender, fc)
    await factory.drain()
    body = await status_of(client, sender, fc, mid)
    assert body["status"] == "REJECTED"
    assert "content" not in body["message"]
    row = await factory.message_row(fc, mid)
    assert row.rejection_reason == "USER_NOT_FOUND"
    assert row.content_ciphertext is None  # IO never keeps a rejected message's content


async def test_inbox_disabled_is_rejected_as_service_not_allowed(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen(inbox=False)
    mid = await send(client, sender, fc)
    await factory.drain()
    assert (await status_of(client, sender, fc, mid))["status"] == "REJECTED"
    assert (await factory.message_row(fc, mid)).rejection_reason == "SERVICE_NOT_ALLOWED"


@pytest.mark.parametrize("mode", ["LEGACY", "AUTO", "MANUAL"])
async def test_blocked_service_is_rejected_in_every_mode(
    client: httpx.AsyncClient, factory: Factory, mode: str
) -> None:
    blocked = await factory.sender()
    other = await factory.sender()
    fc = await factory.citizen(mode=mode, block=[blocked.service_id])
    blocked_mid = await send(client, blocked, fc)
    other_mid = await send(client, other, fc)
    await factory.drain()
    assert (await status_of(client, blocked, fc, blocked_mid))["status"] == "REJECTED"
    expected_other = "REJECTED" if mode == "MANUAL" else "PROCESSED"
    assert (await status_of(client, other, fc, other_mid))["status"] == expected_other


async def test_manual_mode_allows_a_service_with_inbox_enabled_preference(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen(mode="MANUAL")
    async with transaction(factory.runtime.sessions) as session:
        session.add(
            ServicePreference(
                fiscal_code=fc,
                service_id=sender.service_id,
                settings_version=0,
                is_inbox_enabled=True,
                is_email_enabled=True,
                is_webhook_enabled=True,
            )
        )
    mid = await send(client, sender, fc)
    await factory.drain()
    assert (await status_of(client, sender, fc, mid))["status"] == "PROCESSED"


async def test_special_service_needs_an_activation(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    special = await factory.sender(special=True)
    active_fc = await factory.citizen()
    pending_fc = await factory.citizen()
    stale_fc = await factory.citizen()
    missing_fc = await factory.citizen()
    async with transaction(factory.runtime.sessions) as session:
        now = datetime.now(UTC)
        session.add_all(
            [
                Activation(fiscal_code=active_fc, service_id=special.service_id, status="ACTIVE"),
                Activation(
                    fiscal_code=pending_fc,
                    service_id=special.service_id,
                    status="PENDING",
                    updated_at=now,
                ),
                Activation(
                    fiscal_code=stale_fc,
                    service_id=special.service_id,
                    status="PENDING",
                    updated_at=now - timedelta(days=2),
                ),
            ]
        )
    ids = {
        fc: await send(client, special, fc) for fc in (active_fc, pending_fc, stale_fc, missing_fc)
    }
    await factory.drain()
    statuses = {
        fc: (await status_of(client, special, fc, mid))["status"] for fc, mid in ids.items()
    }
    assert statuses == {
        active_fc: "PROCESSED",
        pending_fc: "PROCESSED",
        stale_fc: "REJECTED",
        missing_fc: "REJECTED",
    }


async def test_payment_without_payee_gets_the_organization_as_payee(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender(max_amount=10_000)
    fc = await factory.citizen()
    mid = await send(
        client, sender, fc, payment_data={"amount": 1500, "notice_number": "012345678901234567"}
    )
    await factory.drain()
    content = (await status_of(client, sender, fc, mid))["message"]["content"]
    assert content["payment_data"] == {
        "amount": 1500,
        "notice_number": "012345678901234567",
        "invalid_after_due_date": False,
        "payee": {"fiscal_code": sender.organization_fiscal_code},
    }


async def test_due_date_comes_back_in_to_iso_string_form(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen()
    mid = await send(client, sender, fc, due_date="2018-10-13T02:00:00+02:00")
    await factory.drain()
    content = (await status_of(client, sender, fc, mid))["message"]["content"]
    assert content["due_date"] == "2018-10-13T00:00:00.000Z"


async def test_another_service_cannot_read_the_message(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender, other = await factory.sender(), await factory.sender()
    fc = random_fiscal_code()
    mid = await send(client, sender, fc)
    response = await client.get(f"/api/v1/messages/{fc}/{mid}", headers=other.headers)
    assert response.status_code == 403
    assert "only read messages that you have sent" in response.json()["detail"]


async def test_wrong_id_or_wrong_fiscal_code_is_404(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = random_fiscal_code()
    mid = await send(client, sender, fc)
    for path in (f"{fc}/01ARZ3NDEKTSV4RRFFQ69G5FAV", f"{random_fiscal_code()}/{mid}"):
        response = await client.get(f"/api/v1/messages/{path}", headers=sender.headers)
        assert response.status_code == 404
        assert response.json()["title"] == "Message not found"


async def test_processing_twice_changes_nothing(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    sender = await factory.sender()
    fc = await factory.citizen()
    mid = await send(client, sender, fc)
    assert await process_message(factory.runtime, mid, fc) == "PROCESSED"
    assert await process_message(factory.runtime, mid, fc) is None
    await factory.drain()  # the queued job finds nothing left to do
    async with factory.runtime.sessions() as session:
        changes = await session.scalar(
            select(func.count()).where(MessageStatusChange.message_id == mid)
        )
    assert changes == 1


async def test_transient_errors_are_retried_then_failed(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    from civio.messages import pipeline
    from civio.services.models import Service

    sender = await factory.sender()
    fc = await factory.citizen()
    mid = await send(client, sender, fc)
    # Make the rules fail: the sender vanishes from under the pipeline (a transient
    # inconsistency from the worker's point of view).
    async with transaction(factory.runtime.sessions) as session:
        await session.execute(
            update(Service)
            .where(Service.service_id == sender.service_id)
            .values(service_id=sender.service_id + "-gone")
        )
    attempts = factory.settings.process_max_attempts
    for _ in range(attempts):
        await pipeline.process_message_job(factory.runtime, {"id": mid, "fiscal_code": fc})
    row = await factory.message_row(fc, mid)
    assert row.status == "FAILED"
    assert row.processing_attempts == attempts
