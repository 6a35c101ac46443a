"""What an inbox item shows (title, category, flags), computed once at processing time."""

from __future__ import annotations

from typing import Any


def category_of(content: dict[str, Any]) -> dict[str, Any]:
    payment = content.get("payment_data")
    if payment is not None:
        payee = payment.get("payee", {}).get("fiscal_code", "")
        # IO's rptId: the payee's 11-digit fiscal code and the 18-digit notice number.
        return {"tag": "PAYMENT", "rptId": f"{payee}{payment['notice_number']}"}
    if content.get("eu_covid_cert") is not None:
        return {"tag": "EU_COVID_CERT"}
    if content.get("legal_data") is not None:
        return {"tag": "LEGAL_MESSAGE"}
    return {"tag": "GENERIC"}


def summary_of(content: dict[str, Any]) -> dict[str, Any]:
    third_party = content.get("third_party_data") or {}
    return {
        "title": content["subject"],
        "category": category_of(content),
        "has_attachments": bool(third_party.get("has_attachments", False)),
        "has_precondition": third_party.get("has_precondition") in ("ALWAYS", "ONCE"),
    }
