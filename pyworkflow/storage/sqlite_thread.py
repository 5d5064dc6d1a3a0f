"""A whole SQLite write transaction in one hop to aiosqlite's thread.

Every ``await`` on an aiosqlite connection is a round trip to its thread: a commit
of BEGIN, two statements and COMMIT costs four hand-offs, more than SQLite's own work
(see docs/benchmarks.md, "Profile of W1"). The SQL core's transactional work awaits
nothing but its connection, so here it runs start to end *on* that thread against a
connection whose methods finish without suspending; the caller waits once.

Example:
    >>> import sqlite3
    >>> raw = sqlite3.connect(":memory:", isolation_level=None)
    >>> async def work(conn):
    ...     await conn.execute("CREATE TABLE t (x)")
    ...     await conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    ...     return await conn.fetch_all("SELECT sum(x) FROM t")
    >>> in_transaction(raw, work)
    [(3,)]
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar, cast

from pyworkflow.storage.sql.driver import Params, Row, SQLConnection

T = TypeVar("T")


class ThreadConnection(SQLConnection):
    """A plain ``sqlite3`` connection behind the async interface; nothing suspends.

    Example:
        >>> import asyncio, sqlite3
        >>> conn = ThreadConnection(sqlite3.connect(":memory:"))
        >>> asyncio.run(conn.fetch_one("SELECT 41 + 1"))
        (42,)
    """

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self._raw.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        return self._raw.executemany(sql, rows).rowcount

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return cast(list[Row], self._raw.execute(sql, params).fetchall())


def finish_now(coro: Awaitable[T]) -> T:
    """The result of ``coro``, which must complete without ever suspending.

    Example:
        >>> async def seven() -> int:
        ...     return 7
        >>> finish_now(seven())
        7
    """
    step = cast(Coroutine[Any, Any, T], coro)
    try:
        step.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    step.close()
    raise RuntimeError("a one-hop SQLite transaction awaited something other than its connection")


def in_transaction(raw: sqlite3.Connection, work: Callable[[SQLConnection], Awaitable[T]]) -> T:
    """Run ``work`` in ``BEGIN IMMEDIATE`` … ``COMMIT`` on ``raw`` (call it on its thread).

    Anything raised, including by COMMIT itself, rolls the transaction back.
    """
    raw.execute("BEGIN IMMEDIATE")
    try:
        result = finish_now(work(ThreadConnection(raw)))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.rollback()
        raise
    return result
