"""PostgreSQL storage: the shared SQL core on an asyncpg connection pool.

What PostgreSQL adds to the core (see :mod:`pyworkflow.storage.postgres_dialect`):

* constraints guard every race across processes: ``UNIQUE (run_id, sequence)``
  rejects a second event at a sequence, ``UNIQUE (run_id, dedup_key)`` a second
  outcome for a step or hook, and a stale writer's guarded insert inserts nothing;
* an append after a run's last event is one statement; one that lost the race for
  the next sequence tries again holding a transaction-scoped advisory lock on the run,
  so that busy appenders queue instead of colliding again;
* timer claims use ``FOR UPDATE SKIP LOCKED``: two schedulers never claim one timer and
  never wait for each other;
* migrations take an advisory lock, so processes connecting at once migrate once.

Connections dropped by the server (a restart, a failover, an idle timeout) are
replaced by the pool. An operation that met a dropped connection runs again on a fresh
one, for up to ``reconnect_timeout`` seconds, whenever that is safe: reads, repeatable
writes, and transactions that never reached COMMIT (the server rolled them back). A
commit whose COMMIT reply was lost is looked up by its first event's id.

Example:
    >>> storage = PostgresStorageBackend(host="db.internal", password="s3cret")
    >>> storage._build_dsn()
    'postgresql://pyworkflow:s3cret@db.internal:5432/pyworkflow'
    >>> storage._pool is None, storage._initialized
    (True, False)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

from pyworkflow.storage.base import StorageError
from pyworkflow.storage.postgres_dialect import PostgresDialect, is_closed, is_connection_loss
from pyworkflow.storage.sql.backend import SQLStorageBackend
from pyworkflow.storage.sql.core import ConnectionLostError
from pyworkflow.storage.sql.driver import Params, Row, SQLConnection
from pyworkflow.storage.sql.migrations import pending_migrations

#: Seconds to wait for a new connection before counting the server as unreachable.
CONNECT_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 10.0
_SUPPORTS_RESET = "reset" in inspect.signature(asyncpg.create_pool).parameters


class _Connection(SQLConnection):
    """An asyncpg connection as the SQL core sees it.

    Example:
        >>> _row_count("INSERT 0 3"), _row_count("UPDATE 1"), _row_count("BEGIN")
        (3, 1, 0)
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _row_count(await self._conn.execute(sql, *params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        # asyncpg's own executemany reports no row counts, and the core needs them (a
        # guarded insert that inserted nothing is a conflict). Batches hold a few rows.
        total = 0
        for row in rows:
            total += await self.execute(sql, row)
        return total

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return list(await self._conn.fetch(sql, *params))

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = await self._conn.fetchrow(sql, *params)
        return row


def _row_count(status: str) -> int:
    """Rows changed, from a command tag such as ``INSERT 0 1`` or ``UPDATE 3``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _reset(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset sends "SELECT pg_advisory_unlock_all(); CLOSE ALL;
    # UNLISTEN *; RESET ALL" whenever a connection goes back to the pool: one more round
    # trip per operation. This backend leaves no session state behind (its advisory
    # locks are transaction-scoped; no LISTEN, cursors or SET), so only a transaction
    # left open by a cancelled operation needs undoing.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresStorageBackend(SQLStorageBackend):
    """Storage in a PostgreSQL database, through an asyncpg connection pool.

    Give either ``dsn`` (``postgresql://user:password@host:port/database?sslmode=...``)
    or the separate parameters. The database must exist; ``connect()`` creates or
    upgrades the tables in it. ``reconnect_timeout`` is how long an operation keeps
    trying while the server is unreachable before raising.

    Example:
        >>> storage = PostgresStorageBackend(dsn="postgresql://wf@db:5433/orders")
        >>> storage.dsn, storage.min_pool_size, storage.max_pool_size
        ('postgresql://wf@db:5433/orders', 1, 10)
        >>> storage
        PostgresStorageBackend(db:5433/orders)
    """

    def __init__(
        self,
        dsn: str | None = None,
        host: str = "localhost",
        port: int = 5432,
        user: str = "pyworkflow",
        password: str = "",
        database: str = "pyworkflow",
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        *,
        reconnect_timeout: float = 30.0,
    ) -> None:
        super().__init__(PostgresDialect())
        if min_pool_size < 0 or max_pool_size < 1 or min_pool_size > max_pool_size:
            raise ValueError(
                f"Pool sizes must satisfy 0 <= min_pool_size <= max_pool_size and "
                f"max_pool_size >= 1; got min_pool_size={min_pool_size}, "
                f"max_pool_size={max_pool_size}."
            )
        if reconnect_timeout < 0:
            raise ValueError(f"reconnect_timeout must be >= 0, got {reconnect_timeout}")
        self.dsn = dsn
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.min_pool_size = min_pool_size
        self.max_pool_size = max_pool_size
        self.reconnect_timeout = reconnect_timeout
        self._pool: asyncpg.Pool | None = None
        self._initialized = False

    def __repr__(self) -> str:
        # Never the password.
        return f"{type(self).__name__}({self._where()})"

    def _build_dsn(self) -> str:
        """``postgresql://user[:password]@host:port/database`` from the parameters.

        Example:
            >>> PostgresStorageBackend(user="wf", host="db")._build_dsn()
            'postgresql://wf@db:5432/pyworkflow'
        """
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"postgresql://{auth}@{host}:{self.port}/{quote(self.database, safe='')}"

    def _where(self) -> str:
        """``host:port/database`` for messages (a DSN may carry a password)."""
        host, port, database = self._target()
        return f"{host}:{port}/{database}"

    def _target(self) -> tuple[str, int, str]:
        """Host, port and database, from the DSN when one is given."""
        if not self.dsn:
            return self.host, self.port, self.database
        try:
            parts = urlsplit(self.dsn)
            port = parts.port or 5432
        except ValueError:  # not URL-shaped (e.g. "host=... dbname=..."): say little
            return "?", 0, "?"
        return parts.hostname or "localhost", port, unquote(parts.path.lstrip("/")) or "?"

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open the pool and create or upgrade the schema. Idempotent.

        Raises :class:`StorageError` naming the server when it cannot be reached.
        """
        if self._initialized:
            return
        options: dict[str, Any] = {}
        if _SUPPORTS_RESET:
            options["reset"] = _reset
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn or self._build_dsn(),
                min_size=self.min_pool_size,
                max_size=self.max_pool_size,
                timeout=CONNECT_TIMEOUT,
                server_settings={"application_name": "pyworkflow"},
                **options,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise self._unreachable(exc) from exc
        try:
            await self._migrate()
        except BaseException:
            await self._close_pool()
            raise
        self._initialized = True

    async def disconnect(self) -> None:
        """Close the pool (waiting briefly for operations in flight). Idempotent."""
        await self._close_pool()
        self._initialized = False

    async def _close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pool.terminate()

    def _ensure_connected(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database not connected. Call connect() first.")
        return self._pool

    def _unreachable(self, exc: BaseException) -> StorageError:
        hint = "Is the server running, and are host, port, user and password right?"
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            database = self._target()[2]
            hint = f"Create the database first (createdb {database!r} or CREATE DATABASE)."
        return StorageError(
            f"Cannot connect to PostgreSQL at {self._where()}: {type(exc).__name__}: {exc}. "
            f"{hint} Settings come from the dsn or host/port/user/password/database "
            "arguments, or the PYWORKFLOW_POSTGRES_* environment variables."
        )

    async def health_check(self) -> bool:
        """True when the schema answers a query now (no waiting for a reconnect)."""
        try:
            async with self._reader() as conn:
                await conn.fetch_one("SELECT 1 FROM workflow_runs LIMIT 1")
        except Exception:
            return False
        return True

    # ------------------------------------------------------------------ migrations

    async def pending_migrations(self) -> list[int]:
        """Migration versions not applied to the database yet; changes nothing.

        Works without :meth:`connect` (it then opens one connection of its own), so it
        can check a database before an upgrade touches it.

        Example:
            >>> # await PostgresStorageBackend(dsn).pending_migrations()  ->  [] when current
        """
        if self._pool is not None:
            return await self._pending()
        try:
            conn = await asyncpg.connect(self.dsn or self._build_dsn(), timeout=CONNECT_TIMEOUT)
        except (OSError, asyncpg.PostgresError) as exc:
            raise self._unreachable(exc) from exc
        try:
            return await pending_migrations(self._dialect, _Connection(conn))
        finally:
            await conn.close()

    # ------------------------------------------------------------------ connections

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._ensure_connected()
        try:
            conn = await pool.acquire()
        except Exception as exc:
            if is_connection_loss(exc):
                raise self._lost(exc, applied=False) from exc
            raise
        try:
            yield conn
        except ConnectionLostError:
            # Never hand a connection that failed this way to the next operation, even
            # if the client has not noticed it is dead: the pool opens a new one.
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            raise
        finally:
            # A broken connection is dropped by the pool; its error is not news.
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await pool.release(conn)

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[SQLConnection]:
        async with self._acquire() as conn:
            try:
                yield _Connection(conn)
            except Exception as exc:
                if is_connection_loss(exc, conn):
                    raise self._lost(exc, applied=False) from exc
                raise

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[SQLConnection]:
        async with self._acquire() as conn:
            try:
                yield _Connection(conn)
            except Exception as exc:
                if is_connection_loss(exc, conn):
                    # An autocommit statement may have run before the connection died.
                    raise self._lost(exc, applied=None) from exc
                raise

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[SQLConnection]:
        async with self._acquire() as conn:
            try:
                await conn.execute("BEGIN")
                yield _Connection(conn)
            except BaseException as exc:
                await self._rollback(conn)
                if isinstance(exc, Exception) and is_connection_loss(exc, conn):
                    # Before COMMIT: the server rolls back what a dead connection began.
                    raise self._lost(exc, applied=False) from exc
                raise
            try:
                await conn.execute("COMMIT")
            except Exception as exc:
                if is_connection_loss(exc, conn):
                    raise self._lost(exc, applied=None) from exc
                raise

    @staticmethod
    async def _rollback(conn: asyncpg.Connection) -> None:
        if is_closed(conn) or not conn.is_in_transaction():
            return
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await conn.execute("ROLLBACK")

    def _lost(self, exc: BaseException, applied: bool | None) -> ConnectionLostError:
        return ConnectionLostError(
            f"Lost the connection to PostgreSQL at {self._where()}: {type(exc).__name__}: {exc}",
            applied,
        )
