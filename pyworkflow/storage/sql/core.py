"""The base every SQL backend part builds on: connections, rendering, error mapping.

A concrete backend (SQLite, PostgreSQL) provides three connection contexts and a
:class:`~pyworkflow.storage.sql.dialect.Dialect`:

* :meth:`SQLCore._transaction`: one write transaction, committed on normal exit and
  rolled back on any error; concurrent writers are serialized by the database (SQLite:
  ``BEGIN IMMEDIATE``);
* :meth:`SQLCore._writer`: exclusive use of a writing connection *without* an explicit
  transaction, for single statements that are atomic on their own. It saves the
  ``BEGIN``/``COMMIT`` round trips on hot paths such as ``record_event``;
* :meth:`SQLCore._reader`: a connection for reads that never waits for writers.

Example:
    >>> SQLCore.__abstractmethods__ >= {"_transaction", "_writer", "_reader"}
    True
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.driver import Params, Row, SQLConnection


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class SQLCore(StorageBackend):
    """Shared plumbing of the SQL backend mixins."""

    _dialect: Dialect

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._rendered: dict[str, str] = {}

    # ------------------------------------------------------------------ driver hooks

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[SQLConnection]:
        """A write transaction (see the module docstring)."""

    @abstractmethod
    def _writer(self) -> AbstractAsyncContextManager[SQLConnection]:
        """The writing connection in autocommit mode, exclusively."""

    @abstractmethod
    def _reader(self) -> AbstractAsyncContextManager[SQLConnection]:
        """A connection for reads."""

    # ------------------------------------------------------------------ helpers

    def _sql(self, sql: str) -> str:
        """``sql`` in the dialect's placeholder style (cached: queries repeat)."""
        rendered = self._rendered.get(sql)
        if rendered is None:
            rendered = self._rendered[sql] = self._dialect.render(sql)
        return rendered

    async def _fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._reader() as conn:
            return await conn.fetch_all(self._sql(sql), params)

    async def _fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        async with self._reader() as conn:
            return await conn.fetch_one(self._sql(sql), params)

    async def _write_one(self, sql: str, params: Params = ()) -> int:
        """Run one self-contained statement; the number of rows it changed."""
        async with self._writer() as conn:
            return await conn.execute(self._sql(sql), params)

    def _constraint(self, exc: BaseException) -> str | None:
        """The unique constraint ``exc`` reports, if it is a unique violation."""
        return self._dialect.unique_violation(exc)

    def _dt(self, value: datetime | None) -> Any:
        return self._dialect.encode_dt(value)


def placeholders(n: int) -> str:
    """``?, ?, ?`` for ``n`` values (for ``IN (...)`` lists)."""
    return ", ".join("?" for _ in range(n))
