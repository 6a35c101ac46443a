"""Guards: the models and the migrations describe the same schema, with one head."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory

from civio.core.migrate import alembic_config


def test_models_match_migrations(database_url: str) -> None:
    # Raises if autogenerate would find any difference between models and the database.
    command.check(alembic_config(database_url))


def test_one_migration_head(database_url: str) -> None:
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert len(heads) == 1, heads
