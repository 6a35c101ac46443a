"""Database access: one async engine per process, one transaction per unit of work.

The HTTP edge (``session_dependency``) and the worker own the transaction; services may
``flush()`` but never commit. Jobs are enqueued on the same connection (see ``queue``),
so a job exists only if its data does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from civio.core.config import Settings
from civio.core.embedded import embedded_database_url

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def database_url(settings: Settings) -> str:
    """Plain ``postgresql://`` URL of the configured or embedded database."""
    if settings.database_url:
        return settings.database_url
    return embedded_database_url(settings.data_dir)


def sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("CIVIO_DATABASE_URL must be a postgresql:// URL")


def asyncpg_dsn(url: str) -> str:
    """The same URL in the form asyncpg accepts directly."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def make_engine(url: str, *, pool_size: int = 20, **kwargs: Any) -> AsyncEngine:
    """``hide_parameters``: a database error's message (which ends up in logs and
    tracebacks) shows the SQL but never the bound values, fiscal codes among them."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        hide_parameters=True,
        **kwargs,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with maker() as session, session.begin():
        yield session


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, for bulk statements that skip the ORM's unit of
    work (executemany inserts and updates on hot paths)."""
    return Base.metadata.tables[model.__tablename__]
