"""notifications, installations and sender callbacks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_response_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_events")),
    )
    op.create_index(
        op.f("ix_callback_events_message_id"), "callback_events", ["message_id"], unique=False
    )
    op.create_index(
        "ix_callback_events_pending",
        "callback_events",
        ["service_id", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "installations",
        sa.Column("installation_id", sa.Text(), nullable=False),
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("session_token_hash", sa.LargeBinary(), nullable=True),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("push_channel_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("installation_id", name=op.f("pk_installations")),
    )
    op.create_index(
        op.f("ix_installations_fiscal_code"), "installations", ["fiscal_code"], unique=False
    )
    op.create_index(
        op.f("ix_installations_session_token_hash"),
        "installations",
        ["session_token_hash"],
        unique=False,
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("sender_service_id", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("message_id", name=op.f("uq_notifications_message_id")),
    )
    op.create_index(
        op.f("ix_notifications_fiscal_code"), "notifications", ["fiscal_code"], unique=False
    )
    op.create_table(
        "notification_channels",
        sa.Column("notification_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("attempt_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_notification_channels_notification_id_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "notification_id", "channel", name=op.f("pk_notification_channels")
        ),
    )
    op.add_column("services", sa.Column("callback_url", sa.Text(), nullable=True))
    op.add_column(
        "services", sa.Column("callback_secret_ciphertext", sa.LargeBinary(), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("services", "callback_secret_ciphertext")
    op.drop_column("services", "callback_url")
    op.drop_table("notification_channels")
    op.drop_index(op.f("ix_notifications_fiscal_code"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_installations_session_token_hash"), table_name="installations")
    op.drop_index(op.f("ix_installations_fiscal_code"), table_name="installations")
    op.drop_table("installations")
    op.drop_index(
        "ix_callback_events_pending",
        table_name="callback_events",
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.drop_index(op.f("ix_callback_events_message_id"), table_name="callback_events")
    op.drop_table("callback_events")
