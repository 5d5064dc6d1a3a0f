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

A server database can drop connections (a restart, a failover, a network blip). Its
contexts then raise :class:`ConnectionLostError`, saying whether the operation may have
taken effect, and :meth:`SQLCore._attempt` runs the operation again on a fresh
connection when that is safe. An embedded database never raises it.

Example:
    >>> SQLCore.__abstractmethods__ >= {"_transaction", "_writer", "_reader"}
    True
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pyworkflow.storage.base import StorageBackend, StorageError
from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.driver import Params, Row, SQLConnection

T = TypeVar("T")

# Pauses between attempts after a lost connection: quick at first (a dropped connection
# is usually replaced at once), then at most twice a second while the server is down.
_FIRST_PAUSE = 0.02
_MAX_PAUSE = 0.5


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class ConnectionLostError(StorageError):
    """The connection to the database failed during an operation.

    ``applied`` is False when the operation certainly did not take effect (nothing was
    sent, it only read, or its transaction had not reached COMMIT, so the server rolled
    it back) and None when it may have (the connection dropped while the server was
    executing an autocommit statement or a COMMIT).

    Example:
        >>> ConnectionLostError("server closed the connection", applied=False).applied
        False
    """

    def __init__(self, message: str, applied: bool | None) -> None:
        super().__init__(message)
        self.applied = applied


class SQLCore(StorageBackend):
    """Shared plumbing of the SQL backend mixins."""

    _dialect: Dialect
    #: How long one operation keeps retrying after lost connections (0: never retry).
    reconnect_timeout: float = 0.0

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._rendered: dict[str, str] = {}

    # ------------------------------------------------------------------ driver hooks

    @abstractmethod
    def _transaction(self) -> AbstractAsyncContextManager[SQLConnection]:
        """A write transaction (see the module docstring)."""

    async def _in_transaction(self, work: Callable[[SQLConnection], Awaitable[T]]) -> T:
        """``await work(conn)`` inside one write transaction.

        ``work`` must await nothing but ``conn``'s methods: a driver whose calls are
        hops to a thread (SQLite) may then run it whole on that thread, one hop for the
        transaction instead of one per statement.
        """
        async with self._transaction() as conn:
            return await work(conn)

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

    async def _attempt(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        recover: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """Run ``operation``, again after a lost connection when that is safe.

        ``operation`` must open its own connection context, so that each attempt gets a
        fresh connection. It is repeated, for up to :attr:`reconnect_timeout` seconds,
        when it certainly did not take effect, or when ``idempotent`` (doing it twice is
        the same as once). Otherwise ``recover`` tells, once the database answers again,
        whether the first attempt took effect: its result if so, None to try again.
        Without ``recover`` the :class:`ConnectionLostError` is raised.
        """
        give_up: float | None = None
        pause = _FIRST_PAUSE
        while True:
            try:
                return await operation()
            except ConnectionLostError as lost:
                now = time.monotonic()
                give_up = now + self.reconnect_timeout if give_up is None else give_up
                if now >= give_up:
                    raise
                if lost.applied is None and not idempotent:
                    if recover is None:
                        raise
                    found = await self._attempt(recover)
                    if found is not None:
                        return found
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_PAUSE)

    async def _fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        rendered = self._sql(sql)

        async def once() -> list[Row]:
            async with self._reader() as conn:
                return await conn.fetch_all(rendered, params)

        return await self._attempt(once)

    async def _fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rendered = self._sql(sql)

        async def once() -> Row | None:
            async with self._reader() as conn:
                return await conn.fetch_one(rendered, params)

        return await self._attempt(once)

    async def _write_one(self, sql: str, params: Params = ()) -> int:
        """Run one self-contained statement that is safe to repeat (an UPDATE to given
        values, a DELETE, an INSERT that ignores conflicts); the rows it changed."""
        rendered = self._sql(sql)

        async def once() -> int:
            async with self._writer() as conn:
                return await conn.execute(rendered, params)

        return await self._attempt(once)

    async def _insert_one(self, sql: str, params: Params = ()) -> None:
        """Run one INSERT that must not be repeated (a second one would fail on its key).

        It runs in a transaction, so that a connection lost before COMMIT certainly
        wrote nothing and the insert can be tried again.
        """
        rendered = self._sql(sql)

        async def once() -> None:
            async with self._transaction() as conn:
                await conn.execute(rendered, params)

        await self._attempt(once, idempotent=False)

    def _constraint(self, exc: BaseException) -> str | None:
        """The unique constraint ``exc`` reports, if it is a unique violation."""
        return self._dialect.unique_violation(exc)

    def _dt(self, value: datetime | None) -> Any:
        return self._dialect.encode_dt(value)


def placeholders(n: int) -> str:
    """``?, ?, ?`` for ``n`` values (for ``IN (...)`` lists)."""
    return ", ".join("?" for _ in range(n))
