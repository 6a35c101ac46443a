"""inbox state, summaries and search tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_reading_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("fiscal_code", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("is_read", sa.Boolean(), nullable=False),
        sa.Column("is_archived", sa.Boolean(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_reading_changes")),
    )
    op.create_index(
        "ix_message_reading_changes_message",
        "message_reading_changes",
        ["fiscal_code", "message_id"],
        unique=False,
    )
    op.add_column(
        "messages",
        sa.Column("is_read", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "messages",
        sa.Column("is_archived", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("messages", sa.Column("summary_ciphertext", sa.LargeBinary(), nullable=True))
    op.add_column(
        "messages", sa.Column("search_tokens", postgresql.ARRAY(sa.BigInteger()), nullable=True)
    )
    op.create_index(
        "ix_messages_inbox",
        "messages",
        ["fiscal_code", "is_archived", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'PROCESSED'"),
    )
    op.create_index(
        "ix_messages_search_tokens",
        "messages",
        ["search_tokens"],
        unique=False,
        postgresql_using="gin",
        postgresql_where=sa.text("status = 'PROCESSED'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_messages_search_tokens",
        table_name="messages",
        postgresql_using="gin",
        postgresql_where=sa.text("status = 'PROCESSED'"),
    )
    op.drop_index(
        "ix_messages_inbox", table_name="messages", postgresql_where=sa.text("status = 'PROCESSED'")
    )
    op.drop_column("messages", "search_tokens")
    op.drop_column("messages", "summary_ciphertext")
    op.drop_column("messages", "is_archived")
    op.drop_column("messages", "is_read")
    op.drop_index("ix_message_reading_changes_message", table_name="message_reading_changes")
    op.drop_table("message_reading_changes")
