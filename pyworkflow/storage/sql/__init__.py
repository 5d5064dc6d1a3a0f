"""The SQL core shared by the SQLite and PostgreSQL backends.

* :mod:`.dialect`: what differs between databases (placeholders, types, upserts,
  unique-violation detection, value encodings);
* :mod:`.driver`: the four-method connection interface a driver module implements;
* :mod:`.schema` and :mod:`.migrations`: numbered migrations and their runner;
* :mod:`.codec`: row <-> record converters;
* :mod:`.backend`: :class:`SQLStorageBackend`, every storage method on top of those.

Nothing here imports a database driver.

Example:
    >>> from pyworkflow.storage.sql import MIGRATIONS, SQLStorageBackend
    >>> MIGRATIONS[0].version
    1
"""

from pyworkflow.storage.sql.backend import SQLStorageBackend
from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.driver import Row, SQLConnection
from pyworkflow.storage.sql.migrations import (
    apply_migrations,
    latest_version,
    pending_migrations,
)
from pyworkflow.storage.sql.schema import CONSTRAINTS, MIGRATIONS, VERSION_TABLE, Migration

__all__ = [
    "CONSTRAINTS",
    "MIGRATIONS",
    "VERSION_TABLE",
    "Dialect",
    "Migration",
    "Row",
    "SQLConnection",
    "SQLStorageBackend",
    "apply_migrations",
    "latest_version",
    "pending_migrations",
]
