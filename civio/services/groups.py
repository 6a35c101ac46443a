"""IO's APIM user groups, the permission vocabulary of the PA API."""

from __future__ import annotations

KNOWN_GROUPS: tuple[str, ...] = (
    "ApiMessageWrite",
    "ApiLimitedMessageWrite",
    "ApiMessageRead",
    "ApiLimitedProfileRead",
    "ApiSubscriptionsFeedRead",
    "ApiServiceRead",
    "ApiServiceWrite",
    "ApiMessageWriteEUCovidCert",
    "ApiMessageWriteWithPayee",
    "ApiMessageWriteAdvanced",
    "ApiMessageReadAdvanced",
    "ApiThirdPartyMessageWrite",
    "ApiInfoRead",
    "ApiNoRateLimit",
    "ApiRateLimit250",
    "ApiRemoteContentConfigurationWrite",
    "ApiLegalMessageRead",
)

# What a new developer-portal user gets in IO: sandbox sending only.
SANDBOX_GROUPS: tuple[str, ...] = (
    "ApiLimitedMessageWrite",
    "ApiInfoRead",
    "ApiMessageRead",
    "ApiLimitedProfileRead",
)


class UnknownGroupError(ValueError):
    pass


def validate_groups(groups: list[str]) -> list[str]:
    unknown = [g for g in groups if g not in KNOWN_GROUPS]
    if unknown:
        raise UnknownGroupError(
            f"unknown group(s): {', '.join(unknown)}; known: {', '.join(KNOWN_GROUPS)}"
        )
    return list(dict.fromkeys(groups))
