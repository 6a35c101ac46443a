"""service management (IO's CMS): manage keys, lifecycles, history, sealed keys, logos

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Services that exist already get no lifecycle row: the management API reads a service without
one as approved and released, published when it is visible (``civio.services.manage_service``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "owner_manage_keys",
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("primary_key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("secondary_key_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_owner_manage_keys_owner_id_owners")
        ),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_owner_manage_keys")),
        sa.UniqueConstraint("primary_key_hash", name=op.f("uq_owner_manage_keys_primary_key_hash")),
        sa.UniqueConstraint(
            "secondary_key_hash", name=op.f("uq_owner_manage_keys_secondary_key_hash")
        ),
    )
    op.create_table(
        "service_lifecycles",
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("auto_publish", sa.Boolean(), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.service_id"],
            name=op.f("fk_service_lifecycles_service_id_services"),
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_service_lifecycles")),
    )
    op.create_table(
        "service_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.service_id"],
            name=op.f("fk_service_history_service_id_services"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_history")),
    )
    op.create_index(
        "ix_service_history_service_id_id", "service_history", ["service_id", "id"], unique=False
    )
    op.create_table(
        "service_keys_sealed",
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("primary_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("secondary_sealed", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.service_id"],
            name=op.f("fk_service_keys_sealed_service_id_services"),
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_service_keys_sealed")),
    )
    op.create_table(
        "service_logos",
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.service_id"],
            name=op.f("fk_service_logos_service_id_services"),
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_service_logos")),
    )


def downgrade() -> None:
    op.drop_table("service_logos")
    op.drop_table("service_keys_sealed")
    op.drop_index("ix_service_history_service_id_id", table_name="service_history")
    op.drop_table("service_history")
    op.drop_table("service_lifecycles")
    op.drop_table("owner_manage_keys")
