"""The citizen's inbox (io-citizen-api.md §7, 16-22 and 31; issue: inbox)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from civio.core.config import Settings
from civio.messages.schemas import NewMessage
from civio.messages.service import accept_message
from tests.factories import Factory, Sender, client_with, open_citizen, valid_message

INBOX = "/api/communication/v1/messages"


async def deliver(
    client: httpx.AsyncClient,
    factory: Factory,
    sender: Sender,
    fc: str,
    count: int = 1,
    **content: Any,
) -> list[str]:
    ids = []
    for i in range(count):
        body = (
            valid_message(**content)
            if content
            else valid_message(subject=f"Message number {i:04d}")
        )
        response = await client.post(f"/api/v1/messages/{fc}", json=body, headers=sender.headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    await factory.drain()
    return ids


@pytest.fixture
async def citizen(client: httpx.AsyncClient, settings: Settings) -> tuple[str, dict[str, str]]:
    return await open_citizen(client, settings)


async def test_list_is_newest_first_with_plain_items(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, headers = citizen
    sender = await factory.sender()
    ids = await deliver(client, factory, sender, fc, 3)
    page = (await client.get(INBOX, headers=headers)).json()
    assert [item["id"] for item in page["items"]] == ids[::-1]
    assert page["prev"] == ids[-1]
    assert "next" not in page
    assert set(page["items"][0]) == {
        "id",
        "fiscal_code",
        "created_at",
        "sender_service_id",
        "time_to_live",
    }


@pytest.mark.parametrize(
    "query",
    ["page_size=0", "page_size=101", "maximum_id=123", "minimum_id=" + "I" * 26, "page_size=x"],
)
async def test_bad_paging_parameters_are_400(
    client: httpx.AsyncClient, citizen: tuple[str, dict[str, str]], query: str
) -> None:
    _, headers = citizen
    response = await client.get(f"{INBOX}?{query}", headers=headers)
    assert response.status_code == 400


async def test_paging_over_many_messages_has_no_gap_or_overlap(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    fc, headers = await open_citizen(client, settings)
    sender = await factory.sender(groups=["ApiMessageWrite", "ApiMessageRead", "ApiNoRateLimit"])
    total = 1000
    # The same accept path as the API, without 1,000 HTTP round trips.
    caller = await factory.caller(sender)
    expected = []
    for i in range(total):
        message = NewMessage.model_validate(valid_message(subject=f"Bulk message {i:05d}"))
        expected.append((await accept_message(factory.runtime, caller, fc, message))[1])
    await factory.drain()
    seen: list[str] = []
    url = f"{INBOX}?page_size=37"
    while True:
        page = (await client.get(url, headers=headers)).json()
        seen.extend(item["id"] for item in page["items"])
        if "next" not in page:
            break
        url = f"{INBOX}?page_size=37&maximum_id={page['next']}"
    assert seen == sorted(expected, reverse=True)
    newer = (await client.get(f"{INBOX}?minimum_id={expected[-3]}", headers=headers)).json()
    assert [i["id"] for i in newer["items"]] == [expected[-1], expected[-2]]


async def test_enriched_items_and_payment_category(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, headers = citizen
    sender = await factory.sender(max_amount=100_000)
    [mid] = await deliver(
        client,
        factory,
        sender,
        fc,
        payment_data={"amount": 4200, "notice_number": "012345678901234567"},
    )
    page = (await client.get(f"{INBOX}?enrich_result_data=true", headers=headers)).json()
    item = next(i for i in page["items"] if i["id"] == mid)
    assert item["service_name"] == "Test service"
    assert item["organization_name"] == "Comune di Prova"
    assert item["organization_fiscal_code"] == sender.organization_fiscal_code
    assert item["message_title"] == "Your permit is ready"
    assert item["category"] == {
        "tag": "PAYMENT",
        "rptId": sender.organization_fiscal_code + "012345678901234567",
    }
    assert len(item["category"]["rptId"]) == 29
    assert item["is_read"] is False
    assert item["is_archived"] is False
    assert item["has_attachments"] is False
    assert item["has_precondition"] is False


async def test_pending_and_rejected_messages_never_appear(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, headers = citizen
    blocked = await factory.sender()
    profile = (await client.get("/api/identity/v1/profile", headers=headers)).json()
    await client.post(
        "/api/identity/v1/profile",
        json={
            "version": profile["version"],
            "blocked_inbox_or_channels": {blocked.service_id: ["INBOX"]},
        },
        headers=headers,
    )
    pending = await client.post(
        f"/api/v1/messages/{fc}", json=valid_message(), headers=blocked.headers
    )
    ids = [item["id"] for item in (await client.get(INBOX, headers=headers)).json()["items"]]
    assert pending.json()["id"] not in ids
    await factory.drain()
    status = (await client.get(pending.headers["Location"], headers=blocked.headers)).json()
    assert status["status"] == "REJECTED"
    ids = [item["id"] for item in (await client.get(INBOX, headers=headers)).json()["items"]]
    assert pending.json()["id"] not in ids


async def test_get_one_message_with_payee_defaulted(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, headers = citizen
    sender = await factory.sender(max_amount=100_000)
    [mid] = await deliver(
        client,
        factory,
        sender,
        fc,
        payment_data={"amount": 100, "notice_number": "012345678901234567"},
    )
    plain = (await client.get(f"{INBOX}/{mid}", headers=headers)).json()
    assert plain["content"]["payment_data"]["payee"] == {
        "fiscal_code": sender.organization_fiscal_code
    }
    assert "service_name" not in plain
    public = (await client.get(f"{INBOX}/{mid}?public_message=true", headers=headers)).json()
    assert public["service_name"] == "Test service"
    assert public["message_title"] == "Your permit is ready"


async def test_status_changes(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, headers = citizen
    sender = await factory.sender()
    [mid] = await deliver(client, factory, sender, fc)
    url = f"{INBOX}/{mid}/status"
    unread = await client.put(
        url, json={"change_type": "reading", "is_read": False}, headers=headers
    )
    assert unread.status_code == 400
    read = await client.put(url, json={"change_type": "reading", "is_read": True}, headers=headers)
    assert read.json() == {"is_read": True, "is_archived": False}
    archived = await client.put(
        url, json={"change_type": "archiving", "is_archived": True}, headers=headers
    )
    assert archived.json() == {"is_read": True, "is_archived": True}
    inbox_ids = [i["id"] for i in (await client.get(INBOX, headers=headers)).json()["items"]]
    assert mid not in inbox_ids
    archive = (await client.get(f"{INBOX}?archived=true", headers=headers)).json()
    assert mid in [i["id"] for i in archive["items"]]
    bulk = await client.put(
        url, json={"change_type": "bulk", "is_archived": False}, headers=headers
    )
    assert bulk.json() == {"is_read": True, "is_archived": False}
    bad = await client.put(url, json={"change_type": "deleting"}, headers=headers)
    assert bad.status_code == 400
    async with factory.runtime.engine.connect() as connection:
        history = (
            await connection.execute(
                text(
                    "SELECT is_read, is_archived FROM message_reading_changes "
                    "WHERE message_id = :id ORDER BY id"
                ),
                {"id": mid},
            )
        ).all()
    assert [tuple(h) for h in history] == [(True, False), (True, True), (True, False)]


async def test_access_control_between_citizens_and_services(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice_fc, alice = await open_citizen(client, settings)
    _, bob = await open_citizen(client, settings)
    sender, other_sender = await factory.sender(), await factory.sender()
    [mid] = await deliver(client, factory, sender, alice_fc, subject="Alice private matter")
    assert (await client.get(f"{INBOX}/{mid}", headers=bob)).status_code == 404
    change = await client.put(
        f"{INBOX}/{mid}/status", json={"change_type": "reading", "is_read": True}, headers=bob
    )
    assert change.status_code in (403, 404)
    found = (await client.get(f"{INBOX}?q=private", headers=bob)).json()
    assert found["items"] == []
    assert (await client.get(f"{INBOX}?q=private", headers=alice)).json()["items"][0]["id"] == mid
    assert (
        await client.get(f"/api/v1/messages/{alice_fc}/{mid}", headers=other_sender.headers)
    ).status_code == 403
    assert (await client.get(f"{INBOX}/{mid}")).status_code == 401


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("residenza", True),
        ("RESID", True),
        ("Città", True),
        ("citta", True),
        ("CITTÀ", True),
        ("permesso", True),
        ("comune prova", True),  # sender name words
        ("residenza permesso", True),
        ("residenza zanzibar", False),
        ("zanzibar", False),
        ("ess", False),  # not a word prefix
    ],
)
async def test_search_words_prefixes_case_and_accents(
    client: httpx.AsyncClient,
    factory: Factory,
    citizen: tuple[str, dict[str, str]],
    query: str,
    found: bool,
) -> None:
    fc, headers = citizen
    sender = await factory.sender()
    [mid] = await deliver(
        client,
        factory,
        sender,
        fc,
        subject="Certificato di residenza",
        markdown="Il suo permesso per la Città di Roma è pronto. " + "Dettagli. " * 10,
    )
    await deliver(client, factory, sender, fc, subject="Something else entirely")
    result = (await client.get(f"{INBOX}", params={"q": query}, headers=headers)).json()
    assert (mid in [i["id"] for i in result["items"]]) is found


async def test_search_combines_with_archive_and_paging(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, headers = citizen
    sender = await factory.sender()
    ids = await deliver(client, factory, sender, fc, 5, subject="Tassa rifiuti avviso")
    await client.put(
        f"{INBOX}/{ids[0]}/status",
        json={"change_type": "archiving", "is_archived": True},
        headers=headers,
    )
    first = (await client.get(f"{INBOX}?q=rifiuti&page_size=2", headers=headers)).json()
    assert [i["id"] for i in first["items"]] == [ids[4], ids[3]]
    second = (
        await client.get(
            f"{INBOX}?q=rifiuti&page_size=2&maximum_id={first['next']}", headers=headers
        )
    ).json()
    assert [i["id"] for i in second["items"]] == [ids[2], ids[1]]
    assert "next" not in second
    archived = (await client.get(f"{INBOX}?q=rifiuti&archived=true", headers=headers)).json()
    assert [i["id"] for i in archived["items"]] == [ids[0]]
    assert (await client.get(f"{INBOX}?q=a", headers=headers)).status_code == 400


async def test_search_index_holds_no_plaintext(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, _ = citizen
    sender = await factory.sender()
    await deliver(client, factory, sender, fc, subject="Quisquilia unica parola")
    async with factory.runtime.engine.connect() as connection:
        dump = "\n".join(
            row[0]
            for row in await connection.execute(
                text("SELECT m::text FROM messages m WHERE fiscal_code = :fc"), {"fc": fc}
            )
        )
    assert "quisquilia" not in dump.lower()
    assert b"Quisquilia".hex() not in dump


async def test_same_word_hashes_differently_for_two_citizens(
    client: httpx.AsyncClient, factory: Factory, settings: Settings
) -> None:
    alice, _ = await open_citizen(client, settings)
    bob, _ = await open_citizen(client, settings)
    sender = await factory.sender()
    for fc in (alice, bob):
        await deliver(client, factory, sender, fc, subject="Identical subject words")
    async with factory.runtime.engine.connect() as connection:
        rows = (
            await connection.execute(
                text("SELECT search_tokens FROM messages WHERE fiscal_code IN (:a, :b)"),
                {"a": alice, "b": bob},
            )
        ).all()
    assert len(rows) == 2
    assert not set(rows[0][0]) & set(rows[1][0])


# --- read receipts for ADVANCED senders --------------------------------------------------------


async def test_read_status_for_advanced_senders(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, headers = citizen
    advanced = await factory.sender(
        groups=[
            "ApiMessageWrite",
            "ApiMessageRead",
            "ApiMessageWriteAdvanced",
            "ApiMessageReadAdvanced",
        ]
    )
    sent = await client.post(
        f"/api/v1/messages/{fc}",
        json={**valid_message(), "feature_level_type": "ADVANCED"},
        headers=advanced.headers,
    )
    location = sent.headers["Location"]
    pending = (await client.get(location, headers=advanced.headers)).json()
    assert "read_status" not in pending  # not processed yet
    await factory.drain()
    assert (await client.get(location, headers=advanced.headers)).json()["read_status"] == "UNREAD"
    mid = sent.json()["id"]
    await client.put(
        f"{INBOX}/{mid}/status", json={"change_type": "reading", "is_read": True}, headers=headers
    )
    assert (await client.get(location, headers=advanced.headers)).json()["read_status"] == "READ"
    # The citizen denies read receipts to this service: UNAVAILABLE.
    profile = (await client.get("/api/identity/v1/profile", headers=headers)).json()
    await client.post(
        "/api/identity/v1/profile",
        json={"version": profile["version"], "service_preferences_settings": {"mode": "AUTO"}},
        headers=headers,
    )
    await client.post(
        f"/api/identity/v1/services/{advanced.service_id}/preferences",
        json={
            "is_inbox_enabled": True,
            "is_email_enabled": True,
            "is_webhook_enabled": True,
            "settings_version": 0,
            "can_access_message_read_status": False,
        },
        headers=headers,
    )
    assert (await client.get(location, headers=advanced.headers)).json()[
        "read_status"
    ] == "UNAVAILABLE"


async def test_no_read_status_for_standard_messages_or_without_the_group(
    client: httpx.AsyncClient, factory: Factory, citizen: tuple[str, dict[str, str]]
) -> None:
    fc, _ = citizen
    reader = await factory.sender(
        groups=["ApiMessageWrite", "ApiMessageRead", "ApiMessageReadAdvanced"]
    )
    [mid] = await deliver(client, factory, reader, fc)
    body = (await client.get(f"/api/v1/messages/{fc}/{mid}", headers=reader.headers)).json()
    assert "read_status" not in body
    assert "payment_status" not in body
    writer = await factory.sender(
        groups=["ApiMessageWrite", "ApiMessageRead", "ApiMessageWriteAdvanced"]
    )
    sent = await client.post(
        f"/api/v1/messages/{fc}",
        json={**valid_message(), "feature_level_type": "ADVANCED"},
        headers=writer.headers,
    )
    await factory.drain()
    body = (await client.get(sent.headers["Location"], headers=writer.headers)).json()
    assert body["status"] == "PROCESSED"
    assert "read_status" not in body


async def test_min_app_version_makes_read_status_unavailable(
    client: httpx.AsyncClient, factory: Factory, settings: Settings, runtime: Any
) -> None:

    strict = settings.model_copy(update={"min_app_version_with_read_auth": "2.0.0"})
    fc, headers = await open_citizen(client, settings)
    advanced = await factory.sender(
        groups=[
            "ApiMessageWrite",
            "ApiMessageRead",
            "ApiMessageWriteAdvanced",
            "ApiMessageReadAdvanced",
        ]
    )
    sent = await client.post(
        f"/api/v1/messages/{fc}",
        json={**valid_message(), "feature_level_type": "ADVANCED"},
        headers=advanced.headers,
    )
    await factory.drain()
    async with client_with(strict, runtime) as strict_client:
        unknown = await strict_client.get(sent.headers["Location"], headers=advanced.headers)
        assert unknown.json()["read_status"] == "UNAVAILABLE"
        profile = (await client.get("/api/identity/v1/profile", headers=headers)).json()
        await client.post(
            "/api/identity/v1/profile",
            json={"version": profile["version"], "last_app_version": "2.1.0"},
            headers=headers,
        )
        recent = await strict_client.get(sent.headers["Location"], headers=advanced.headers)
        assert recent.json()["read_status"] == "UNREAD"
