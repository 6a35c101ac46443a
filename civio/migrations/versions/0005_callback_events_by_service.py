"""callback events listed by service

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Operators list a service's recent events (any status) newest first.
    op.create_index(
        "ix_callback_events_service_id_id",
        "callback_events",
        ["service_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_callback_events_service_id_id", table_name="callback_events")
