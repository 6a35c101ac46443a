"""The citizen's profile and service preferences (io-citizen-api.md §7, 4-9 and 12-15)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from civio.core.config import Settings
from civio.core.db import transaction
from civio.profiles.service import published_hash
from tests.factories import Factory, login, valid_message

PROFILE = "/api/identity/v1/profile"


async def get_profile(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(PROFILE, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def update(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> httpx.Response:
    current = await get_profile(client, headers)
    body = {"version": current["version"], **fields}
    return await client.post(PROFILE, json=body, headers=headers)


async def test_first_login_creates_a_closed_profile_with_every_required_field(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    fc, headers = await login(client, settings, email="mario.rossi@example.org")
    profile = await get_profile(client, headers)
    assert profile["fiscal_code"] == fc
    assert profile["has_profile"] is True
    assert profile["name"] == "Mario"
    assert profile["family_name"] == "Rossi"
    assert profile["is_inbox_enabled"] is False
    assert profile["is_webhook_enabled"] is False
    assert profile["is_email_enabled"] is True
    assert profile["is_email_validated"] is False
    assert profile["email"] == "mario.rossi@example.org"
    assert profile["service_preferences_settings"] == {"mode": "LEGACY", "version": -1}
    assert profile["version"] == 0


async def test_second_login_keeps_the_profile(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    fc, headers = await login(client, settings)
    assert (await update(client, headers, preferred_languages=["en_GB"])).status_code == 200
    _, again = await login(client, settings, fc)
    assert (await get_profile(client, again))["preferred_languages"] == ["en_GB"]


async def test_version_is_optimistic_concurrency(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, headers = await login(client, settings)
    stale = await client.post(PROFILE, json={"version": 7}, headers=headers)
    assert stale.status_code == 409
    assert "not the latest version" in stale.json()["detail"]
    ok = await client.post(PROFILE, json={"version": 0}, headers=headers)
    assert ok.status_code == 200
    assert ok.json()["version"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"version": "1"},
        {"version": 0, "preferred_languages": ["xx_XX"]},
        {"version": 0, "email": "not-an-email"},
        {"version": 0, "accepted_tos_version": 0},
        {"version": 0, "last_app_version": "1.2"},
        {"version": 0, "reminder_status": "SOMETIMES"},
        {"version": 0, "push_notifications_content_type": "LOUD"},
        {"version": 0, "service_preferences_settings": {"mode": "CUSTOM"}},
        {"version": 0, "blocked_inbox_or_channels": {"svc": ["SMS"]}},
    ],
)
async def test_invalid_profile_bodies_are_400(
    client: httpx.AsyncClient, settings: Settings, body: dict[str, Any]
) -> None:
    _, headers = await login(client, settings)
    response = await client.post(PROFILE, json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["title"] == "Invalid Profile"


async def test_first_accepted_tos_opens_inbox_and_webhook(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, headers = await login(client, settings)
    response = await update(client, headers, accepted_tos_version=4.5)
    body = response.json()
    assert body["accepted_tos_version"] == 4.5
    assert body["is_inbox_enabled"] is True
    assert body["is_webhook_enabled"] is True
    # Later the citizen may switch them off again.
    later = (await update(client, headers, accepted_tos_version=5, is_inbox_enabled=False)).json()
    assert later["is_inbox_enabled"] is False


async def test_new_email_is_unvalidated_and_an_email_validated_elsewhere_is_412(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    await factory.citizen(email="taken@example.org")  # operator-made: validated
    _, headers = await login(client, settings, email="first@example.org")
    changed = (await update(client, headers, email="second@example.org")).json()
    assert changed["email"] == "second@example.org"
    assert changed["is_email_validated"] is False
    taken = await update(client, headers, email="Taken@Example.org")
    assert taken.status_code == 412
    assert taken.json()["type"] == "https://ioapp.it/problems/email-already-taken"


async def test_unchanged_email_taken_by_another_is_flagged_not_refused(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    _, headers = await login(client, settings, email="shared@example.org")
    await factory.citizen(email="shared@example.org")  # another citizen validates it
    profile = await get_profile(client, headers)
    assert profile["is_email_already_taken"] is True
    unchanged = await update(client, headers, email="shared@example.org")
    assert unchanged.status_code == 200
    assert unchanged.json()["is_email_already_taken"] is True


async def test_mode_transitions(client: httpx.AsyncClient, settings: Settings) -> None:
    _, headers = await login(client, settings)
    auto = await update(client, headers, service_preferences_settings={"mode": "AUTO"})
    assert auto.json()["service_preferences_settings"] == {"mode": "AUTO", "version": 0}
    manual = await update(client, headers, service_preferences_settings={"mode": "MANUAL"})
    assert manual.json()["service_preferences_settings"] == {"mode": "MANUAL", "version": 1}
    back = await update(client, headers, service_preferences_settings={"mode": "LEGACY"})
    assert back.status_code == 409
    omitted = await update(client, headers, preferred_languages=["it_IT"])
    assert omitted.status_code == 409  # omitting the mode means LEGACY


async def test_reset_on_omit_fields_and_legacy_only_blocks(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    _, headers = await login(client, settings)
    first = (
        await update(
            client,
            headers,
            last_app_version="2.3.1",
            push_notifications_content_type="FULL",
            reminder_status="ENABLED",
            blocked_inbox_or_channels={"S1": ["INBOX", "EMAIL"]},
            preferred_languages=["de_DE"],
        )
    ).json()
    assert first["last_app_version"] == "2.3.1"
    assert first["blocked_inbox_or_channels"] == {"S1": ["INBOX", "EMAIL"]}
    second = (await update(client, headers)).json()
    for field in ("last_app_version", "push_notifications_content_type", "reminder_status"):
        assert field not in second  # reset to UNKNOWN/UNSET, omitted
    assert second["preferred_languages"] == ["de_DE"]  # other fields keep their value
    assert second["blocked_inbox_or_channels"] == {"S1": ["INBOX", "EMAIL"]}
    auto = (
        await update(
            client,
            headers,
            service_preferences_settings={"mode": "AUTO"},
            blocked_inbox_or_channels={"S2": ["INBOX"]},
        )
    ).json()
    assert "blocked_inbox_or_channels" not in auto


async def test_profile_rules_drive_the_pipeline(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    sender = await factory.sender()
    fc, headers = await login(client, settings)

    async def send_and_status() -> str:
        sent = await client.post(
            f"/api/v1/messages/{fc}", json=valid_message(), headers=sender.headers
        )
        await factory.drain()
        got = await client.get(sent.headers["Location"], headers=sender.headers)
        return str(got.json()["status"])

    assert await send_and_status() == "REJECTED"  # inbox off until ToS accepted
    await update(client, headers, accepted_tos_version=1)
    assert await send_and_status() == "PROCESSED"
    limited = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert limited.json()["sender_allowed"] is True
    await update(client, headers, blocked_inbox_or_channels={sender.service_id: ["INBOX"]})
    assert await send_and_status() == "REJECTED"
    limited = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert limited.json()["sender_allowed"] is False


async def test_raw_profile_table_holds_no_email(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    _, headers = await login(client, settings, email="hidden.person@example.org")
    await update(client, headers, email="hidden.again@example.org")
    async with factory.runtime.engine.connect() as connection:
        dump = "\n".join(
            row[0] for row in await connection.execute(text("SELECT p::text FROM profiles p"))
        )
    assert "hidden.person" not in dump
    assert "hidden.again" not in dump


# --- service preferences ----------------------------------------------------------------------


def prefs_url(service_id: str) -> str:
    return f"/api/identity/v1/services/{service_id}/preferences"


async def test_preferences_need_auto_or_manual_and_a_known_service(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    sender = await factory.sender()
    _, headers = await login(client, settings)
    assert (await client.get(prefs_url(sender.service_id), headers=headers)).status_code == 409
    body = {
        "is_inbox_enabled": True,
        "is_email_enabled": True,
        "is_webhook_enabled": True,
        "settings_version": 0,
    }
    legacy_post = await client.post(prefs_url(sender.service_id), json=body, headers=headers)
    assert legacy_post.status_code == 409
    await update(client, headers, service_preferences_settings={"mode": "AUTO"})
    unknown = await client.get(prefs_url("01ARZ3NDEKTSV4RRFFQ69G5FAV"), headers=headers)
    assert unknown.status_code == 404


@pytest.mark.parametrize(("mode", "default"), [("AUTO", True), ("MANUAL", False)])
async def test_preference_defaults(
    client: httpx.AsyncClient, settings: Settings, factory: Factory, mode: str, default: bool
) -> None:
    sender = await factory.sender()
    _, headers = await login(client, settings)
    await update(client, headers, service_preferences_settings={"mode": mode})
    prefs = (await client.get(prefs_url(sender.service_id), headers=headers)).json()
    assert prefs == {
        "is_inbox_enabled": default,
        "is_email_enabled": default,
        "is_webhook_enabled": default,
        "settings_version": 0,
        # IO's defaults are all-allow for AUTO and all-deny for MANUAL, read status included.
        "can_access_message_read_status": default,
    }


async def test_preference_upsert_versions_and_read_status(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    sender = await factory.sender()
    fc, headers = await login(client, settings)
    await update(client, headers, service_preferences_settings={"mode": "MANUAL"})
    body: dict[str, Any] = {
        "is_inbox_enabled": True,
        "is_email_enabled": False,
        "is_webhook_enabled": True,
        "settings_version": 0,
    }
    wrong = await client.post(
        prefs_url(sender.service_id), json={**body, "settings_version": 3}, headers=headers
    )
    assert wrong.status_code == 409
    stored = await client.post(prefs_url(sender.service_id), json=body, headers=headers)
    assert stored.status_code == 200
    assert stored.json()["can_access_message_read_status"] is True
    assert (await client.get(prefs_url(sender.service_id), headers=headers)).json() == {
        **body,
        "can_access_message_read_status": True,
    }
    denied = await client.post(
        prefs_url(sender.service_id),
        json={**body, "can_access_message_read_status": False},
        headers=headers,
    )
    assert denied.json()["can_access_message_read_status"] is False
    # MANUAL with an inbox-enabled preference: the sender may write.
    limited = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert limited.status_code == 404  # inbox still off: ToS not accepted
    await update(
        client, headers, service_preferences_settings={"mode": "MANUAL"}, accepted_tos_version=1
    )
    limited = await client.get(f"/api/v1/profiles/{fc}", headers=sender.headers)
    assert limited.json()["sender_allowed"] is True
    # A mode change bumps the version and invalidates the stored preference.
    await update(client, headers, service_preferences_settings={"mode": "AUTO"})
    prefs = (await client.get(prefs_url(sender.service_id), headers=headers)).json()
    assert prefs["settings_version"] == 1
    assert prefs["is_email_enabled"] is True  # AUTO default again


async def test_legacy_blocks_migrate_to_preferences(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    sender = await factory.sender()
    _, headers = await login(client, settings)
    await update(client, headers, blocked_inbox_or_channels={sender.service_id: ["EMAIL"]})
    await update(client, headers, service_preferences_settings={"mode": "AUTO"})
    prefs = (await client.get(prefs_url(sender.service_id), headers=headers)).json()
    assert prefs["is_email_enabled"] is False
    assert prefs["is_inbox_enabled"] is True


async def test_special_service_inbox_follows_the_activation(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    special = await factory.sender(special=True)
    fc, headers = await login(client, settings)
    await update(client, headers, service_preferences_settings={"mode": "AUTO"})
    assert (await client.get(prefs_url(special.service_id), headers=headers)).json()[
        "is_inbox_enabled"
    ] is False
    await client.put(
        "/api/v1/activations/",
        json={"fiscal_code": fc, "status": "ACTIVE"},
        headers=special.headers,
    )
    assert (await client.get(prefs_url(special.service_id), headers=headers)).json()[
        "is_inbox_enabled"
    ] is True


async def test_preference_changes_feed_the_subscriptions_feed(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    sender = await factory.sender()
    fc, headers = await login(client, settings)
    await update(
        client, headers, service_preferences_settings={"mode": "AUTO"}, accepted_tos_version=1
    )
    off = {
        "is_inbox_enabled": False,
        "is_email_enabled": True,
        "is_webhook_enabled": True,
        "settings_version": 0,
    }
    await client.post(prefs_url(sender.service_id), json=off, headers=headers)
    async with transaction(factory.runtime.sessions) as session:
        rows = (
            await session.execute(
                text(
                    "SELECT day, published_hash_sealed, service_id, subscribed "
                    "FROM subscription_events ORDER BY id"
                )
            )
        ).all()
    wanted = hashlib.sha256(fc.encode()).hexdigest()
    events = [
        (row.service_id, row.subscribed)
        for row in rows
        if published_hash(factory.runtime.keyring, row) == wanted
    ]
    assert events == [(None, True), (sender.service_id, False)]


async def test_changing_the_email_mails_a_validation_link(
    client: httpx.AsyncClient, settings: Settings, factory: Factory
) -> None:
    import mailbox

    _, headers = await login(client, settings)
    marker = f"new.address.{id(headers)}@example.org"
    response = await update(client, headers, email=marker)
    assert response.status_code == 200
    await factory.drain()
    maildir = mailbox.Maildir(settings.data_dir / "mail", create=False)
    sent = [m for m in maildir if m["To"] == marker]
    assert len(sent) == 1
    assert "/validate-profile-email?token=" in sent[0].as_string()
