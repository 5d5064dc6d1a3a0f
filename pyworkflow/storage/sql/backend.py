"""``SQLStorageBackend``: every storage method, written once for all SQL databases.

A concrete backend subclasses it, supplies a :class:`Dialect` and the three
connection contexts of :class:`~pyworkflow.storage.sql.core.SQLCore`, and calls
:meth:`SQLStorageBackend._migrate` from ``connect()``.

Example:
    >>> from pyworkflow.storage.base import StorageBackend
    >>> issubclass(SQLStorageBackend, StorageBackend)
    True
"""

from __future__ import annotations

from pyworkflow.storage.sql.commit import CommitMixin
from pyworkflow.storage.sql.coordination import CoordinationMixin
from pyworkflow.storage.sql.migrations import apply_migrations, pending_migrations
from pyworkflow.storage.sql.records import RecordsMixin
from pyworkflow.storage.sql.schedules import SchedulesMixin


class SQLStorageBackend(CommitMixin, CoordinationMixin, RecordsMixin, SchedulesMixin):
    """The dialect-independent storage backend (abstract: no connections of its own).

    Example:
        >>> from pyworkflow.storage.sqlite import SQLiteStorageBackend
        >>> issubclass(SQLiteStorageBackend, SQLStorageBackend)
        True
    """

    async def _migrate(self) -> list[int]:
        """Apply pending migrations; the versions applied by this call."""
        return await apply_migrations(self._dialect, self._transaction, self._reader)

    async def _pending(self) -> list[int]:
        """Migration versions not yet applied, without changing anything."""

        async def once() -> list[int]:
            async with self._reader() as conn:
                return await pending_migrations(self._dialect, conn)

        return await self._attempt(once)
