"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.dialects import postgresql

from civio.core.migrate import execute_script

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The job queue's own tables, as pgqueuer defines them (its installer's DDL).
    execute_script(QueryBuilderEnvironment().build_install_query())
    op.create_table(
        "activations",
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("fiscal_code", "service_id", name=op.f("pk_activations")),
    )
    op.create_table(
        "data_keys",
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("fiscal_code", name=op.f("pk_data_keys")),
    )
    op.create_table(
        "message_status_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_status_changes")),
    )
    op.create_index(
        "ix_message_status_changes_message_id",
        "message_status_changes",
        ["message_id"],
        unique=False,
    )
    op.create_table(
        "messages",
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("sender_service_id", sa.Text(), nullable=False),
        sa.Column("sender_owner_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_to_live", sa.Integer(), nullable=False),
        sa.Column("feature_level_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("is_pending", sa.Boolean(), nullable=False),
        sa.Column("processing_attempts", sa.Integer(), nullable=False),
        sa.Column("content_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column(
            "status_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("fiscal_code", "id", name=op.f("pk_messages")),
    )
    op.create_index(
        "ix_messages_sender_service_id_created_at",
        "messages",
        ["sender_service_id", "id"],
        unique=False,
    )
    op.create_table(
        "organization_logos",
        sa.Column("organization_fiscal_code", sa.Text(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("organization_fiscal_code", name=op.f("pk_organization_logos")),
    )
    op.create_table(
        "owners",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owners")),
    )
    op.create_table(
        "profiles",
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("service_preferences_settings_version", sa.Integer(), nullable=False),
        sa.Column("is_inbox_enabled", sa.Boolean(), nullable=False),
        sa.Column("is_email_enabled", sa.Boolean(), nullable=False),
        sa.Column("is_email_validated", sa.Boolean(), nullable=False),
        sa.Column("is_webhook_enabled", sa.Boolean(), nullable=False),
        sa.Column("email_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("email_hash", sa.LargeBinary(), nullable=True),
        sa.Column("preferred_languages", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "blocked_inbox_or_channels", postgresql.JSONB(astext_type=sa.Text()), nullable=False
        ),
        sa.Column("accepted_tos_version", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("fiscal_code", name=op.f("pk_profiles")),
    )
    op.create_index(op.f("ix_profiles_email_hash"), "profiles", ["email_hash"], unique=False)
    op.create_table(
        "service_preferences",
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("settings_version", sa.Integer(), nullable=False),
        sa.Column("is_inbox_enabled", sa.Boolean(), nullable=False),
        sa.Column("is_email_enabled", sa.Boolean(), nullable=False),
        sa.Column("is_webhook_enabled", sa.Boolean(), nullable=False),
        sa.Column("can_access_message_read_status", sa.Boolean(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "fiscal_code", "service_id", "settings_version", name=op.f("pk_service_preferences")
        ),
    )
    op.create_table(
        "subscription_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("fiscal_code_hash", sa.Text(), nullable=False),
        sa.Column("service_id", sa.Text(), nullable=True),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_events")),
    )
    op.create_index("ix_subscription_events_day", "subscription_events", ["day"], unique=False)
    op.create_table(
        "services",
        sa.Column("service_id", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("service_name", sa.Text(), nullable=False),
        sa.Column("department_name", sa.Text(), nullable=False),
        sa.Column("organization_name", sa.Text(), nullable=False),
        sa.Column("organization_fiscal_code", sa.Text(), nullable=False),
        sa.Column("authorized_recipients", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("authorized_cidrs", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("max_allowed_payment_amount", sa.BigInteger(), nullable=False),
        sa.Column("require_secure_channels", sa.Boolean(), nullable=False),
        sa.Column("is_visible", sa.Boolean(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("service_metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("groups", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("primary_key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("secondary_key_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_services_owner_id_owners")
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_services")),
        sa.UniqueConstraint("primary_key_hash", name=op.f("uq_services_primary_key_hash")),
        sa.UniqueConstraint("secondary_key_hash", name=op.f("uq_services_secondary_key_hash")),
    )
    op.create_index(
        op.f("ix_services_organization_fiscal_code"),
        "services",
        ["organization_fiscal_code"],
        unique=False,
    )
    op.create_index(op.f("ix_services_owner_id"), "services", ["owner_id"], unique=False)


def downgrade() -> None:
    execute_script(QueryBuilderEnvironment().build_uninstall_query())
    op.drop_index(op.f("ix_services_owner_id"), table_name="services")
    op.drop_index(op.f("ix_services_organization_fiscal_code"), table_name="services")
    op.drop_table("services")
    op.drop_index("ix_subscription_events_day", table_name="subscription_events")
    op.drop_table("subscription_events")
    op.drop_table("service_preferences")
    op.drop_index(op.f("ix_profiles_email_hash"), table_name="profiles")
    op.drop_table("profiles")
    op.drop_table("owners")
    op.drop_table("organization_logos")
    op.drop_index("ix_messages_sender_service_id_created_at", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_message_status_changes_message_id", table_name="message_status_changes")
    op.drop_table("message_status_changes")
    op.drop_table("data_keys")
    op.drop_table("activations")
