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

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from functools import partial
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


def run_group(
    raw: sqlite3.Connection, works: list[Callable[[SQLConnection], Awaitable[Any]]]
) -> list[tuple[bool, Any]]:
    """Run several transactions' ``works`` as one SQLite transaction: one COMMIT (one
    fsync) for all, each inside its own SAVEPOINT so a failing one is undone alone.

    Returns ``(True, result)`` or ``(False, error)`` per work, in order; when BEGIN or
    COMMIT itself fails, every work gets that error (nothing was written).

    Example:
        >>> raw = sqlite3.connect(":memory:", isolation_level=None)
        >>> _ = raw.execute("CREATE TABLE t (x UNIQUE)")
        >>> async def add(conn, x=1):
        ...     return await conn.execute("INSERT INTO t VALUES (?)", (x,))
        >>> [ok for ok, _ in run_group(raw, [add, add, lambda c: add(c, 2)])]
        [True, False, True]
        >>> raw.execute("SELECT x FROM t ORDER BY x").fetchall()
        [(1,), (2,)]
    """
    try:
        raw.execute("BEGIN IMMEDIATE")
    except BaseException as error:
        return [(False, error)] * len(works)
    outcomes: list[tuple[bool, Any]] = []
    try:
        for work in works:
            raw.execute("SAVEPOINT work")
            try:
                outcomes.append((True, finish_now(work(ThreadConnection(raw)))))
            except Exception as error:
                raw.execute("ROLLBACK TO work")
                outcomes.append((False, error))
            raw.execute("RELEASE work")
        raw.execute("COMMIT")
    except BaseException as error:
        if raw.in_transaction:
            raw.rollback()
        return [(False, error)] * len(works)
    return outcomes


class GroupCommitter:
    """Queues write transactions for one connection; each turn of its thread runs all
    that queued up meanwhile as one group (:func:`run_group`).

    A caller waits for its own outcome. Durability is unchanged (nobody hears "done"
    before the group's COMMIT), but concurrent writers share one fsync: with many runs
    resuming at once that is most of the cost of a commit.

    Example:
        >>> import asyncio
        >>> raw = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        >>> async def main():
        ...     async def on_thread(fn):  # the connection's thread (here: a worker thread)
        ...         return await asyncio.to_thread(fn)
        ...     group = GroupCommitter(on_thread, lambda: raw, asyncio.Lock())
        ...     async def one(conn):
        ...         return await conn.fetch_one("SELECT 1")
        ...     return await asyncio.gather(*(group.run(one) for _ in range(3)))
        >>> asyncio.run(main())
        [(1,), (1,), (1,)]
    """

    def __init__(
        self,
        on_thread: Callable[[Callable[[], Any]], Awaitable[Any]],
        raw: Callable[[], sqlite3.Connection],
        lock: asyncio.Lock,
    ) -> None:
        self._on_thread = on_thread
        self._raw = raw
        self._lock = lock
        self._queue: list[tuple[Callable[[SQLConnection], Awaitable[Any]], asyncio.Future[Any]]]
        self._queue = []
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[SQLConnection], Awaitable[T]]) -> T:
        """``work``'s result once the group holding it has committed."""
        entry = (work, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        try:
            return cast(T, await asyncio.shield(entry[1]))
        except asyncio.CancelledError:
            if entry in self._queue:  # not taken yet: it never runs
                self._queue.remove(entry)
            raise

    def _run_group(self, works: list[Any]) -> list[tuple[bool, Any]]:
        return run_group(self._raw(), works)

    async def _drain(self) -> None:
        group: list[Any] = []
        try:
            async with self._lock:
                while self._queue:
                    group, self._queue = self._queue, []
                    works = [work for work, _ in group]
                    outcomes = await self._on_thread(partial(self._run_group, works))
                    for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                        if not future.done():
                            future.set_result(value) if ok else future.set_exception(value)
                    group = []
        except BaseException as error:
            # The thread is gone (connection closed) or the loop is shutting down:
            # whoever still waits hears it; nothing of theirs was committed.
            for _, future in [*group, *self._queue]:
                if not future.done():
                    future.set_exception(
                        error if isinstance(error, Exception) else RuntimeError(str(error))
                    )
            self._queue = []
            if not isinstance(error, Exception):
                raise
