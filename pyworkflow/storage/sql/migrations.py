"""Apply and inspect the numbered schema migrations.

Each migration runs in its own write transaction together with the row that records
it in ``pyworkflow_schema_version``. Inside that transaction the runner checks again
whether another process applied the migration meanwhile, so two processes calling
``connect()`` on a fresh database at once both succeed and the schema is created once
(the write transaction serializes them: ``BEGIN IMMEDIATE`` in SQLite, the dialect's
``migration_lock_sql`` elsewhere).

Example:
    >>> from pyworkflow.storage.sql.schema import MIGRATIONS
    >>> latest_version() == MIGRATIONS[-1].version
    True
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from pyworkflow.storage.base import StorageError
from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.driver import SQLConnection
from pyworkflow.storage.sql.schema import (
    MIGRATIONS,
    VERSION_TABLE,
    VERSION_TABLE_DDL,
    Migration,
)

ConnectionFactory = Callable[[], AbstractAsyncContextManager[SQLConnection]]


def latest_version() -> int:
    """The schema version this code expects."""
    return MIGRATIONS[-1].version


async def applied_versions(dialect: Dialect, conn: SQLConnection) -> set[int]:
    """Versions recorded in the version table (empty when it does not exist).

    Read-only: safe on a database you must not change.
    """
    if await conn.fetch_one(dialect.render(dialect.table_exists_sql), (VERSION_TABLE,)) is None:
        return set()
    rows = await conn.fetch_all(f"SELECT version FROM {VERSION_TABLE}")
    return {int(r[0]) for r in rows}


async def pending_migrations(dialect: Dialect, conn: SQLConnection) -> list[int]:
    """Versions not applied yet, in order; changes nothing.

    Raises :class:`StorageError` when the database was migrated by a newer release,
    because this code would then read a schema it does not know.

    Example:
        >>> # await pending_migrations(dialect, conn)  ->  [] on an up-to-date database
    """
    done = await applied_versions(dialect, conn)
    _refuse_newer(done)
    return [m.version for m in MIGRATIONS if m.version not in done]


async def apply_migrations(
    dialect: Dialect,
    transaction: ConnectionFactory,
    read: ConnectionFactory,
    target: int | None = None,
) -> list[int]:
    """Bring the schema up to date; the versions this call applied (often none).

    ``transaction`` opens a write transaction (committed on normal exit, rolled back
    on error); ``read`` gives a connection for the initial read-only check, which
    makes the common case (already migrated) free of writes. ``target`` stops at that
    version instead of the latest (to build an older schema, e.g. in upgrade tests).

    Example:
        >>> # await apply_migrations(dialect, backend._transaction, backend._reader)
    """
    wanted = [m for m in MIGRATIONS if target is None or m.version <= target]
    async with read() as conn:
        pending = set(await pending_migrations(dialect, conn))
    if not any(m.version in pending for m in wanted):
        return []
    async with transaction() as conn:
        await _lock(dialect, conn)
        await conn.execute(dialect.ddl(VERSION_TABLE_DDL))
    applied: list[int] = []
    for migration in wanted:
        if await _apply_one(dialect, transaction, migration):
            applied.append(migration.version)
    return applied


async def _apply_one(dialect: Dialect, transaction: ConnectionFactory, m: Migration) -> bool:
    async with transaction() as conn:
        await _lock(dialect, conn)
        # Checked again inside the write transaction: another process may have applied
        # it between our read and our lock.
        done = await conn.fetch_one(
            dialect.render(f"SELECT 1 FROM {VERSION_TABLE} WHERE version = ?"), (m.version,)
        )
        if done is not None:
            return False
        for statement in m.statements:
            await conn.execute(dialect.ddl(statement))
        await conn.execute(
            dialect.render(
                f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) VALUES (?, ?, ?)"
            ),
            (m.version, m.description, dialect.encode_dt(datetime.now(UTC))),
        )
    return True


async def _lock(dialect: Dialect, conn: SQLConnection) -> None:
    if dialect.migration_lock_sql:
        await conn.execute(dialect.migration_lock_sql)


def _refuse_newer(done: set[int]) -> None:
    newer = sorted(v for v in done if v > latest_version())
    if newer:
        raise StorageError(
            f"The database schema is at version {newer[-1]}, newer than the version "
            f"{latest_version()} this pyworkflow understands. Upgrade pyworkflow, or point "
            "it at another database."
        )
