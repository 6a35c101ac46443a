"""Alembic environment: async engine, one advisory lock so two migrators never race."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from civio.auth import models as _auth  # noqa: F401 - models register their tables
from civio.callbacks import models as _callbacks  # noqa: F401
from civio.core.db import Base, sqlalchemy_url
from civio.core.keys import DataKey  # noqa: F401
from civio.messages import models as _messages  # noqa: F401
from civio.notifications import models as _notifications  # noqa: F401
from civio.profiles import models as _profiles  # noqa: F401
from civio.services import manage_models as _manage  # noqa: F401
from civio.services import models as _services  # noqa: F401
from civio.templates import models as _templates  # noqa: F401

MIGRATION_LOCK = 0x63697669  # "civi"
target_metadata = Base.metadata


def _include_name(name: str | None, type_: str, _parents: object) -> bool:
    """pgqueuer's tables belong to pgqueuer (installed by 0001), not to our models."""
    return not (type_ == "table" and name is not None and name.startswith("pgqueuer"))


def _run(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
    connection.execute(text("SET lock_timeout = '5s'"))
    context.configure(
        connection=connection, target_metadata=target_metadata, include_name=_include_name
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})


async def _main() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by civio.core.migrate"
    engine = create_async_engine(sqlalchemy_url(url), hide_parameters=True)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `civio db upgrade`")
asyncio.run(_main())
