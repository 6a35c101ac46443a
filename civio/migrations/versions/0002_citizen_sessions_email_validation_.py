"""citizen sessions, email validation, profile preferences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "citizen_sessions",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("spid_level", sa.Text(), nullable=False),
        sa.Column("identity_provider", sa.Text(), nullable=False),
        sa.Column("identity_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_citizen_sessions")),
    )
    op.create_index(
        "ix_citizen_sessions_fiscal_code", "citizen_sessions", ["fiscal_code"], unique=False
    )
    op.create_table(
        "email_validation_tokens",
        sa.Column("token_id", sa.Text(), nullable=False),
        sa.Column("validator_hash", sa.LargeBinary(), nullable=False),
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("email_hash", sa.LargeBinary(), nullable=False),
        sa.Column("invalid_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_email_validation_tokens")),
    )
    op.create_index(
        op.f("ix_email_validation_tokens_fiscal_code"),
        "email_validation_tokens",
        ["fiscal_code"],
        unique=False,
    )
    op.create_table(
        "login_attempts",
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_login_attempts")),
    )
    # IO's AcceptedTosVersion is a number (e.g. 4.5), not an integer.
    op.alter_column(
        "profiles",
        "accepted_tos_version",
        type_=sa.Double(),
        existing_type=sa.Integer(),
        existing_nullable=True,
    )
    op.add_column("profiles", sa.Column("reminder_status", sa.Text(), nullable=True))
    op.add_column(
        "profiles", sa.Column("push_notifications_content_type", sa.Text(), nullable=True)
    )
    op.add_column("profiles", sa.Column("last_app_version", sa.Text(), nullable=True))
    op.alter_column(
        "service_preferences",
        "can_access_message_read_status",
        existing_type=sa.BOOLEAN(),
        nullable=True,
    )


def downgrade() -> None:
    op.alter_column(
        "profiles",
        "accepted_tos_version",
        type_=sa.Integer(),
        existing_type=sa.Double(),
        postgresql_using="accepted_tos_version::integer",
    )
    op.alter_column(
        "service_preferences",
        "can_access_message_read_status",
        existing_type=sa.BOOLEAN(),
        nullable=False,
    )
    op.drop_column("profiles", "last_app_version")
    op.drop_column("profiles", "push_notifications_content_type")
    op.drop_column("profiles", "reminder_status")
    op.drop_table("login_attempts")
    op.drop_index(
        op.f("ix_email_validation_tokens_fiscal_code"), table_name="email_validation_tokens"
    )
    op.drop_table("email_validation_tokens")
    op.drop_index("ix_citizen_sessions_fiscal_code", table_name="citizen_sessions")
    op.drop_table("citizen_sessions")
