"""The thin driver interface the SQL core runs its queries through.

A driver module (aiosqlite, asyncpg, ...) wraps one database connection in a
:class:`SQLConnection`. The SQL core only ever calls these four methods, each of
which is one round trip to the driver, with SQL already rendered by the dialect.

Example:
    >>> class Echo(SQLConnection):
    ...     async def execute(self, sql, params=()): return 0
    ...     async def executemany(self, sql, rows): return 0
    ...     async def fetch_all(self, sql, params=()): return [(sql,)]
    >>> import asyncio
    >>> asyncio.run(Echo().fetch_one("SELECT 1"))
    ('SELECT 1',)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

#: One result row, indexed by position in the SELECT list.
Row = Sequence[Any]
Params = Sequence[Any]


class SQLConnection(ABC):
    """One connection (or transaction) as the SQL core sees it."""

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement once per parameter row; the rows changed, summed."""

    @abstractmethod
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one statement (a SELECT or ``... RETURNING``) and return every row."""

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row, or None. Drivers may override to save work."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None
