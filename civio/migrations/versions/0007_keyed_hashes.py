"""subscription events keep the published hash sealed; sessions indexed by expiry

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

``subscription_events.fiscal_code_hash`` (sha256 hex in clear) becomes
``published_hash_sealed`` (bytea). Existing rows keep their digest as 32 raw bytes, which
the feed reads as it is; rows written from now on are sealed under a key derived from the
master key (see ``civio.profiles.models.SubscriptionEvent``). Migrations do not hold the
master key, so old rows are not sealed here.

The expired-session purge looks sessions up by ``expires_at``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "subscription_events",
        "fiscal_code_hash",
        type_=sa.LargeBinary(),
        existing_type=sa.Text(),
        existing_nullable=False,
        postgresql_using="decode(fiscal_code_hash, 'hex')",
    )
    op.alter_column(
        "subscription_events", "fiscal_code_hash", new_column_name="published_hash_sealed"
    )
    op.create_index(
        "ix_citizen_sessions_expires_at", "citizen_sessions", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_citizen_sessions_expires_at", table_name="citizen_sessions")
    # A sealed hash cannot be opened without the master key: refuse rather than turn the
    # feed into garbage.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM subscription_events "
        "WHERE length(published_hash_sealed) <> 32) THEN RAISE EXCEPTION "
        "'subscription_events holds sealed hashes: downgrading past 0007 would lose the feed'; "
        "END IF; END $$"
    )
    op.alter_column(
        "subscription_events", "published_hash_sealed", new_column_name="fiscal_code_hash"
    )
    op.alter_column(
        "subscription_events",
        "fiscal_code_hash",
        type_=sa.Text(),
        existing_type=sa.LargeBinary(),
        existing_nullable=False,
        postgresql_using="encode(fiscal_code_hash, 'hex')",
    )
