"""IO's CreateNotification decision: which channels alert the citizen of a new message.

Email: an address exists, is enabled and validated, EMAIL is not blocked for the service,
and secure channels are off (the message's ``require_secure_channels`` overrides the
service's). IO checks the EMAIL block only in LEGACY mode; civio honours the citizen's
per-service email switch in every mode (the switch exists in AUTO/MANUAL precisely for this).
Push: webhook enabled, WEBHOOK not blocked, and at least one registered installation.
The sandbox fiscal code's email goes to the service owner.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipient:
    has_email: bool
    is_email_enabled: bool
    is_email_validated: bool
    is_webhook_enabled: bool
    blocked: frozenset[str]
    has_installation: bool
    is_sandbox: bool


def secure_channels(message_flag: bool | None, service_flag: bool) -> bool:
    return service_flag if message_flag is None else message_flag


def wants_email(recipient: Recipient, *, secure: bool) -> bool:
    if secure or "EMAIL" in recipient.blocked:
        return False
    if recipient.is_sandbox:
        return True  # the owner's developer address, validated by provisioning
    return recipient.has_email and recipient.is_email_enabled and recipient.is_email_validated


def wants_push(recipient: Recipient) -> bool:
    return (
        recipient.is_webhook_enabled
        and "WEBHOOK" not in recipient.blocked
        and recipient.has_installation
    )


def channels_for(recipient: Recipient, *, secure: bool) -> list[str]:
    channels = []
    if wants_email(recipient, secure=secure):
        channels.append("EMAIL")
    if wants_push(recipient):
        channels.append("WEBHOOK")
    return channels
