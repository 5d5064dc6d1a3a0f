"""What PostgreSQL needs from the shared SQL core, and how its errors are read.

Example:
    >>> d = PostgresDialect()
    >>> d.render("SELECT 1 FROM t WHERE a = ? AND b LIKE '?%' AND c = ?")
    "SELECT 1 FROM t WHERE a = $1 AND b LIKE '?%' AND c = $2"
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs or py.typed

from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.schema import CONSTRAINTS

# Advisory lock keys are (namespace, key) pairs of 32-bit integers; this namespace
# ("pywf" in ASCII) keeps ours apart from the application's own advisory locks.
_LOCK_NAMESPACE = 0x70797766
_MIGRATION_KEY = 0


class PostgresDialect(Dialect):
    """``$n`` placeholders, native timestamps and booleans, row locks, named constraints.

    ``JSON`` rather than ``JSONB``: nothing queries inside the documents, ``JSON``
    keeps them as written (key order included) and accepts every string ``json.dumps``
    produces, where ``JSONB`` rejects ``\\u0000``.

    Example:
        >>> PostgresDialect().encode_dt(datetime(2024, 5, 1))
        datetime.datetime(2024, 5, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """

    name = "postgres"
    types = {
        "text": "TEXT",
        "ts": "TIMESTAMPTZ",
        "json": "JSON",
        "int": "BIGINT",
        "bool": "BOOLEAN",
    }
    skip_locked = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"
    migration_lock_sql = f"SELECT pg_advisory_xact_lock({_LOCK_NAMESPACE}, {_MIGRATION_KEY})"
    # hashtext() maps run ids onto 32 bits; two runs sharing a key only queue together.
    lock_run_sql = f"SELECT pg_advisory_xact_lock({_LOCK_NAMESPACE + 1}, hashtext(?))"
    table_exists_sql = (
        "SELECT 1 FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_name = ?"
    )

    def render(self, sql: str) -> str:
        """``?`` placeholders become ``$1, $2, ...``; quoted literals are left alone."""
        out: list[str] = []
        number = 0
        quoted = False
        for char in sql:
            if char == "'":
                quoted = not quoted  # '' (an escaped quote) toggles twice
            elif char == "?" and not quoted:
                number += 1
                out.append(f"${number}")
                continue
            out.append(char)
        return "".join(out)

    def unique_violation(self, exc: BaseException) -> str | None:
        """PostgreSQL names the violated constraint or unique index itself.

        Example:
            >>> PostgresDialect().unique_violation(ValueError("not a database error"))
        """
        if not isinstance(exc, asyncpg.UniqueViolationError):
            return None
        name = getattr(exc, "constraint_name", None)
        return name if name in CONSTRAINTS else None

    def encode_dt(self, value: datetime | None) -> Any:
        """A timezone-aware datetime (TIMESTAMPTZ); naive values are taken as UTC."""
        if value is None:
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def encode_bool(self, value: bool) -> Any:
        """A native boolean."""
        return bool(value)


def is_connection_loss(exc: BaseException, conn: asyncpg.Connection | None = None) -> bool:
    """Whether ``exc`` means the server or the connection went away (worth a retry on a
    fresh connection) rather than a problem with the statement.

    Example:
        >>> is_connection_loss(ConnectionRefusedError()), is_connection_loss(ValueError())
        (True, False)
    """
    if isinstance(exc, asyncpg.QueryCanceledError):
        return False  # a statement timeout or a cancel request: the statement's problem
    if isinstance(
        exc,
        OSError  # refused, reset, timed out
        | asyncpg.PostgresConnectionError  # class 08, and "closed in the middle of operation"
        | asyncpg.exceptions.OperatorInterventionError  # shutting down, starting up
        | asyncpg.TooManyConnectionsError
        # "cannot switch to state ...; another operation is in progress": a connection
        # whose protocol state the server's shutdown left behind; raised before sending.
        | asyncpg.InternalClientError,
    ):
        return True
    # "connection is closed": a connection the pool handed out just before the server
    # dropped it. Other interface errors are misuse and must surface.
    return isinstance(exc, asyncpg.InterfaceError) and conn is not None and is_closed(conn)


def is_closed(conn: asyncpg.Connection) -> bool:
    """Whether a pooled connection is gone (the pool detaches a closed one at once, and
    a detached connection raises on every call, ``is_closed()`` included)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True
