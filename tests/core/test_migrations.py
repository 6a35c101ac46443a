"""Guards: the models and the migrations describe the same schema, with one head; migration
0001 is frozen; and the job queue's tables are what the installed pgqueuer expects."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.engine import make_url

from civio.core.db import asyncpg_dsn
from civio.core.migrate import alembic_config, upgrade_async

SCHEMA_0001 = Path(__file__).with_name("schema_0001.txt")

# One line per schema object of ``public``, in a stable order: what a migration created.
DESCRIBE_SCHEMA = {
    "column": """
        SELECT table_name, column_name, ordinal_position, data_type, udt_name, is_nullable,
               coalesce(column_default, ''), is_identity, coalesce(identity_generation, '')
        FROM information_schema.columns WHERE table_schema = 'public'
    """,
    "constraint": """
        SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public'
    """,
    "index": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "sequence": """
        SELECT sequence_name, data_type, start_value, increment
        FROM information_schema.sequences WHERE sequence_schema = 'public'
    """,
    "function": """
        SELECT p.proname, pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
    """,
    "trigger": """
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal
    """,
    "type": """
        SELECT t.typname, t.typtype,
               coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                         FROM pg_enum e WHERE e.enumtypid = t.oid), '')
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_class r WHERE r.reltype = t.oid)
    """,
}


def _one_line(value: object) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n")


async def describe_schema(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        lines = []
        for kind, query in DESCRIBE_SCHEMA.items():
            for row in await connection.fetch(query):
                lines.append(" | ".join([kind, *(_one_line(value) for value in row)]))
        return sorted(lines)
    finally:
        await connection.close()


@pytest.fixture
async def empty_database(database_url: str) -> AsyncIterator[str]:
    """A new, empty database on the test cluster (its URL); dropped afterwards."""
    name = f"civio_schema_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_models_match_migrations(database_url: str) -> None:
    # Raises if autogenerate would find any difference between models and the database.
    command.check(alembic_config(database_url))


def test_one_migration_head(database_url: str) -> None:
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert len(heads) == 1, heads


async def test_migration_0001_creates_the_schema_it_always_created(empty_database: str) -> None:
    # schema_0001.txt was taken when 0001 still ran pgqueuer 1.6.0's live installer; 0001
    # must keep creating exactly that, whatever pgqueuer version is installed.
    await upgrade_async(empty_database, "0001")
    assert (
        await describe_schema(asyncpg_dsn(empty_database)) == SCHEMA_0001.read_text().splitlines()
    )


async def test_the_job_queue_schema_at_head_is_what_the_installed_pgqueuer_creates(
    database_url: str, empty_database: str
) -> None:
    # 0001 is frozen, so a pgqueuer upgrade that changes its tables needs a migration of
    # ours carrying its upgrade SQL; this says when.
    admin = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        await admin.execute(QueryBuilderEnvironment().build_install_query())
    finally:
        await admin.close()
    installed = await describe_schema(asyncpg_dsn(empty_database))
    assert installed, "pgqueuer's installer created nothing"
    assert all("pgqueuer" in line.split(" | ")[1] for line in installed), installed
    head = await describe_schema(asyncpg_dsn(database_url))
    assert [line for line in head if "pgqueuer" in line.split(" | ")[1]] == installed
