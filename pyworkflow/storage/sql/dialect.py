"""What differs between SQL databases, kept out of the shared SQL core.

The core writes every query once, with ``?`` placeholders and portable SQL
(``ON CONFLICT``, ``RETURNING``, ``CASE``). A :class:`Dialect` turns that text into
what its database accepts and converts Python values to and from column values.

A PostgreSQL dialect overrides :meth:`Dialect.render` (``?`` -> ``$1``), the column
``types`` (e.g. ``TIMESTAMPTZ``), :attr:`Dialect.skip_locked` (``FOR UPDATE SKIP
LOCKED``), :attr:`Dialect.migration_lock_sql`, :attr:`Dialect.lock_run_sql` and
:meth:`Dialect.unique_violation`.

Example:
    >>> d = Dialect()
    >>> d.upsert("t", ("id", "v"), ("id",), ("v",))
    'INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


class Dialect:
    """Portable defaults: text timestamps, text JSON, integer booleans.

    Timestamps are stored as fixed-width ISO-8601 UTC strings with microseconds
    (``2024-05-01T12:00:00.000000+00:00``). Fixed width makes plain string comparison
    equal to time order, so ``fire_at <= ?`` and ``ORDER BY created_at`` are correct
    without any date functions, and the value round-trips exactly (epoch floats lose
    microseconds).

    Example:
        >>> Dialect().encode_dt(datetime(2024, 5, 1, tzinfo=UTC))
        '2024-05-01T00:00:00.000000+00:00'
    """

    name = "generic"
    #: Column types substituted into the migration DDL templates.
    types: Mapping[str, str] = {
        "text": "TEXT",
        "ts": "TEXT",
        "json": "TEXT",
        "int": "INTEGER",
        "bool": "INTEGER",
    }
    #: Appended to the sub-select that picks timers to claim.
    skip_locked = ""
    #: Appended to a SELECT whose row is then updated in the same transaction (not
    #: needed where write transactions are serialized, as in SQLite).
    for_update = ""
    #: Run first in every migration transaction so that concurrent migrators serialize.
    migration_lock_sql: str | None = None
    #: ``?``-style statement (one parameter: the run id) that makes transactions
    #: appending after a run's last event wait for each other. Needed where two
    #: transactions can both read the same ``MAX(sequence)`` (PostgreSQL); None where
    #: write transactions are serialized anyway (SQLite).
    lock_run_sql: str | None = None
    #: ``?``-style query telling whether a table exists (one parameter: the name).
    table_exists_sql = "SELECT 1 FROM information_schema.tables WHERE table_name = ?"

    # ------------------------------------------------------------------ SQL text

    def render(self, sql: str) -> str:
        """Translate the core's ``?`` placeholders into this database's style."""
        return sql

    def ddl(self, template: str) -> str:
        """Fill a DDL template's ``{text}``, ``{ts}``, ``{json}``... column types."""
        return self.render(template.format(**self.types))

    def insert_ignore(self, table: str, columns: Sequence[str], conflict: Sequence[str]) -> str:
        """An INSERT that silently skips rows conflicting on ``conflict``."""
        return f"{self._insert(table, columns)} ON CONFLICT ({', '.join(conflict)}) DO NOTHING"

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        conflict: Sequence[str],
        update: Sequence[str],
        literals: Mapping[str, str] | None = None,
    ) -> str:
        """An INSERT that updates ``update`` columns (or sets ``literals``) on conflict."""
        sets = [f"{c} = excluded.{c}" for c in update]
        sets += [f"{c} = {v}" for c, v in (literals or {}).items()]
        return (
            f"{self._insert(table, columns)} ON CONFLICT ({', '.join(conflict)}) "
            f"DO UPDATE SET {', '.join(sets)}"
        )

    @staticmethod
    def _insert(table: str, columns: Sequence[str]) -> str:
        marks = ", ".join("?" for _ in columns)
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    # ------------------------------------------------------------------ errors

    def unique_violation(self, exc: BaseException) -> str | None:
        """The name of the unique constraint ``exc`` reports, or None if it is not one.

        Names are those of :data:`pyworkflow.storage.sql.schema.CONSTRAINTS`.
        """
        return None

    # ------------------------------------------------------------------ values

    def encode_dt(self, value: datetime | None) -> Any:
        """A datetime as stored; naive values are taken as UTC (like the schemas)."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def decode_dt(self, value: Any) -> datetime | None:
        """The inverse of :meth:`encode_dt`; always timezone-aware UTC."""
        if value is None:
            return None
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromisoformat(str(value))

    def encode_json(self, value: Any) -> Any:
        """A JSON-ready value as stored (compact text)."""
        return json.dumps(value, separators=(",", ":"))

    def decode_json(self, value: Any) -> Any:
        """The inverse of :meth:`encode_json`; NULL reads as None."""
        if value is None:
            return None
        return json.loads(value) if isinstance(value, str | bytes) else value

    def encode_bool(self, value: bool) -> Any:
        """A boolean as stored."""
        return 1 if value else 0

    def decode_bool(self, value: Any) -> bool:
        """The inverse of :meth:`encode_bool`."""
        return bool(value)
