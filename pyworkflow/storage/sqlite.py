"""SQLite storage: the embedded default, safe under several processes.

Several processes (workers, a scheduler, a CLI polling runs) may share one file:

* WAL journal: readers never block the writer and the writer never blocks readers;
* ``busy_timeout``: writers wait for each other instead of failing "database is locked";
* ``BEGIN IMMEDIATE`` for multi-statement writes: the write lock is taken up front, so
  two transactions queue instead of one failing when it upgrades from read to write;
* one writing connection per process behind an asyncio lock (a connection carries one
  transaction at a time) and a separate read-only connection, so reads in this process
  neither wait behind a write nor see a transaction that has not committed yet.

Example:
    >>> import asyncio, tempfile, os
    >>> async def demo(path):
    ...     storage = SQLiteStorageBackend(path)
    ...     await storage.connect()
    ...     runs, cursor = await storage.list_runs()
    ...     await storage.disconnect()
    ...     return runs, cursor
    >>> asyncio.run(demo(os.path.join(tempfile.mkdtemp(), "wf.db")))
    ([], None)
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from pyworkflow.storage.base import CorruptStorageError, StorageError
from pyworkflow.storage.sql.backend import SQLStorageBackend
from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.driver import Params, Row, SQLConnection
from pyworkflow.storage.sql.migrations import pending_migrations
from pyworkflow.storage.sql.schema import CONSTRAINTS, MIGRATIONS
from pyworkflow.storage.sqlite_thread import GroupCommitter

T = TypeVar("T")

_MEMORY = ":memory:"
# SQLITE_CORRUPT and SQLITE_NOTADB (primary result codes).
_CORRUPT_CODES = {11, 26}
_UNIQUE_PREFIX = "UNIQUE constraint failed: "
_MIN_VERSION = (3, 35, 0)  # UPDATE/INSERT ... RETURNING


class SQLiteDialect(Dialect):
    """SQLite specifics: the catalog query and its unique-violation messages.

    Example:
        >>> SQLiteDialect().unique_violation(
        ...     sqlite3.IntegrityError("UNIQUE constraint failed: events.run_id, events.sequence"))
        'events_sequence_uq'
    """

    name = "sqlite"
    table_exists_sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    _by_columns = {
        (table, tuple(f"{table}.{c}" for c in columns)): name
        for name, (table, columns) in CONSTRAINTS.items()
    }

    def unique_violation(self, exc: BaseException) -> str | None:
        # SQLite names the columns, not the constraint: "UNIQUE constraint failed: t.a, t.b".
        if not isinstance(exc, sqlite3.IntegrityError):
            return None
        message = str(exc)
        if not message.startswith(_UNIQUE_PREFIX):
            return None
        columns = tuple(c.strip() for c in message[len(_UNIQUE_PREFIX) :].split(","))
        table = columns[0].split(".", 1)[0]
        return self._by_columns.get((table, columns))


_aiosqlite_worker = getattr(aiosqlite.core, "_connection_worker_thread", None)


def _tolerant_worker(*args: Any) -> None:
    """aiosqlite's worker loop, kept alive when a caller's event loop has closed.

    A query still running when ``asyncio.run`` ends (a background task cancelled at
    shutdown) answers into a closed loop; aiosqlite's thread would die with a
    traceback and leave the connection unusable. The answer has nobody to go to, so
    it is dropped and the thread keeps serving the queue.
    """
    assert _aiosqlite_worker is not None
    while True:
        try:
            _aiosqlite_worker(*args)
            return
        except RuntimeError as error:
            if "closed" not in str(error):
                raise


class _Connection(SQLConnection):
    """An aiosqlite connection; every method is one hop to its thread."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._db.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        cursor = await self._db.executemany(sql, rows)
        return cursor.rowcount

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        # execute_fetchall is one hop; execute + fetchone would be two.
        return cast(list[Row], list(await self._db.execute_fetchall(sql, params)))


def _is_corruption(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPT_CODES


class SQLiteStorageBackend(SQLStorageBackend):
    """Storage in one SQLite file (default ``./pyworkflow_data/pyworkflow.db``).

    ``synchronous`` defaults to ``FULL``: with WAL, ``NORMAL`` can lose the last
    commits on power loss or an OS crash, and a lost ``step.completed`` means a step
    with side effects runs again. ``FULL`` costs one fsync of the WAL per commit
    (measured on a VM disk: a 2-event commit takes ~0.35 ms with FULL, ~0.15 ms with
    NORMAL), which is what "a step's completion is committed before the workflow moves
    past it" needs. Pass ``synchronous="NORMAL"`` where losing the last commits on power
    loss is acceptable.

    Example:
        >>> storage = SQLiteStorageBackend("/tmp/pyworkflow-doc/wf.db")
        >>> storage.db_path.name, storage._db, storage._initialized
        ('wf.db', None, False)
    """

    def __init__(
        self,
        db_path: str = "./pyworkflow_data/pyworkflow.db",
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
    ) -> None:
        super().__init__(SQLiteDialect())
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.db_path = Path(db_path)
        self._memory = str(db_path) == _MEMORY
        if not self._memory:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        self._db: aiosqlite.Connection | None = None
        self._read_db: aiosqlite.Connection | None = None
        self._initialized = False
        self._lock: asyncio.Lock | None = None
        self._group: GroupCommitter | None = None

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open the file, set the pragmas and apply pending migrations. Idempotent.

        Raises :class:`CorruptStorageError` (and leaves the file untouched) when the
        file is not a SQLite database.
        """
        if self._initialized:
            return
        if sqlite3.sqlite_version_info < _MIN_VERSION:
            raise StorageError(
                f"SQLite {'.'.join(map(str, _MIN_VERSION))} or newer is required; this Python "
                f"uses {sqlite3.sqlite_version}. Use a newer Python build or pysqlite3."
            )
        # No header check with a plain open(): closing any descriptor of the file drops
        # every POSIX lock this process holds on it, which lets another process delete
        # the WAL under a live connection (data loss). SQLite's own first read of
        # sqlite_master, before anything writes, rejects a file that is not a database.
        self._lock = asyncio.Lock()
        self._group = None  # bound to the connection and lock made here
        try:
            self._db = await self._open(read_only=False)
            self._read_db = self._db if self._memory else await self._open(read_only=True)
            await self._migrate()
        except BaseException as exc:
            await self._close()
            if _is_corruption(exc):
                raise self._corrupt(str(exc)) from exc
            raise
        self._initialized = True

    async def disconnect(self) -> None:
        """Close both connections. Idempotent."""
        await self._close()
        self._initialized = False

    async def _close(self) -> None:
        self._group = None
        reader, writer = self._read_db, self._db
        self._read_db = self._db = None
        # The writer closes last: the last connection to close checkpoints the WAL,
        # which a read-only connection cannot do.
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

    def _ensure_connected(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("Database not connected. Call connect() first.")
        return self._db

    async def _open(self, read_only: bool) -> aiosqlite.Connection:
        target = _MEMORY if self._memory else self.db_path.resolve().as_uri()
        if read_only:
            target += "?mode=ro"
        # isolation_level=None: no implicit BEGIN; transactions are ours, explicit.
        pending = aiosqlite.connect(
            target, uri=not self._memory, timeout=self.busy_timeout, isolation_level=None
        )
        # aiosqlite's worker thread is not a daemon, so a program that never calls
        # disconnect() would hang at exit. Every commit is durable before it returns,
        # so letting the interpreter end the thread loses nothing.
        worker = getattr(pending, "_thread", None)
        if worker is not None:
            worker.daemon = True
            if getattr(worker, "_target", None) is _aiosqlite_worker:
                worker._target = _tolerant_worker
        db = await pending
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # Read the schema before anything that writes (switching to WAL rewrites the
            # header): a damaged file fails here, untouched.
            await db.execute_fetchall("SELECT count(*) FROM sqlite_master")
            if not read_only:
                await self._enable_wal(db)
                await db.execute(f"PRAGMA synchronous = {self.synchronous}")
        except BaseException:
            await db.close()
            raise
        return db

    async def _enable_wal(self, db: aiosqlite.Connection) -> None:
        """Switch to WAL. The switch needs a moment of exclusive access that the busy
        timeout does not cover: two processes opening a brand-new file at once can see
        "database is locked" here, so retry briefly."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.005
        while True:
            try:
                await db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _corrupt(self, detail: str) -> CorruptStorageError:
        return CorruptStorageError(
            f"{self.db_path} is not a readable SQLite database ({detail}). pyworkflow left "
            "it unchanged. Move it aside or delete it to start with an empty store, restore "
            "it from a backup, or point db_path at another file."
        )

    # ------------------------------------------------------------------ migrations

    async def pending_migrations(self) -> list[int]:
        """Migration versions not applied to the file yet; changes nothing.

        Works without :meth:`connect` (a missing file has every migration pending).

        Example:
            >>> import asyncio
            >>> storage = SQLiteStorageBackend("/tmp/pyworkflow-doc/none.db")
            >>> asyncio.run(storage.pending_migrations())
            [1, 2]
        """
        if self._db is not None:
            return await self._pending()
        if self._memory or not self.db_path.exists() or self.db_path.stat().st_size == 0:
            return [m.version for m in MIGRATIONS]
        try:
            db = await aiosqlite.connect(
                self.db_path.resolve().as_uri() + "?mode=ro", uri=True, timeout=self.busy_timeout
            )
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(str(exc)) from exc
        try:
            return await pending_migrations(self._dialect, _Connection(db))
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise self._corrupt(str(exc)) from exc
            raise
        finally:
            await db.close()

    # ------------------------------------------------------------------ connections

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[SQLConnection]:
        db = self._ensure_connected()
        assert self._lock is not None
        async with self._lock:
            with self._naming_corruption():
                try:
                    # Inside the try: a task cancelled while BEGIN is queued still has
                    # it run on the connection's thread, and must roll it back.
                    await db.execute("BEGIN IMMEDIATE")
                    yield _Connection(db)
                    await db.execute("COMMIT")
                except BaseException:
                    # A no-op if COMMIT went through or BEGIN never did. Shielded: a
                    # second cancellation must not leave the shared connection inside
                    # a transaction.
                    await asyncio.shield(db.rollback())
                    raise

    async def _in_transaction(self, work: Callable[[SQLConnection], Awaitable[T]]) -> T:
        db = self._ensure_connected()
        if self._group is None:
            assert self._lock is not None
            # aiosqlite's own queue to its thread (private, hence looked up): a group
            # of transactions is one hop and one COMMIT. See storage/sqlite_thread.py.
            on_thread = cast(Callable[[Callable[[], Any]], Awaitable[Any]], db._execute)
            self._group = GroupCommitter(on_thread, lambda: db._conn, self._lock)
        with self._naming_corruption():
            return await self._group.run(work)

    async def _write_one(self, sql: str, params: Params = ()) -> int:
        # Through the group committer: a lease taken while other runs commit shares
        # their fsync instead of paying its own.
        rendered = self._sql(sql)

        async def work(conn: SQLConnection) -> int:
            return await conn.execute(rendered, params)

        return await self._attempt(lambda: self._in_transaction(work))

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[SQLConnection]:
        db = self._ensure_connected()
        assert self._lock is not None
        async with self._lock:
            with self._naming_corruption():
                yield _Connection(db)

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[SQLConnection]:
        self._ensure_connected()
        with self._naming_corruption():
            if self._memory:
                # One connection only: wait for the writer so as not to read its open
                # transaction.
                assert self._lock is not None
                async with self._lock:
                    yield _Connection(cast(aiosqlite.Connection, self._db))
                return
            assert self._read_db is not None
            yield _Connection(self._read_db)

    @contextmanager
    def _naming_corruption(self) -> Iterator[None]:
        """Damage found after connect() (a bad page deep in the file), or a full disk,
        is reported naming the file and the fix."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise self._corrupt(str(exc)) from exc
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise StorageError(
                    f"{self.db_path}: the disk is full ({exc}). Nothing of this write was "
                    "stored. Free space on that disk (or move db_path); runs resume "
                    "where they stopped once there is room."
                ) from exc
            raise
