"""Which storage an execution-API call uses, connected once per backend object.

The given storage, else the configured one, else (for reading calls) the embedded
SQLite default at ``./pyworkflow_data/pyworkflow.db``.

Example:
    >>> embedded_storage_in_use() is None  # nothing has opened the default yet
    True
"""

from __future__ import annotations

import weakref

from pyworkflow.config import get_config
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.config import config_to_storage

__all__ = [
    "ConfigurationError",
    "embedded_storage_in_use",
    "ensure_connected",
    "resolve_storage",
]


class ConfigurationError(Exception):
    """pyworkflow is not configured for what was asked (e.g. no storage).

    Example:
        >>> from pyworkflow.core.exceptions import WorkflowError
        >>> err = ConfigurationError("no storage backend")
        >>> str(err), isinstance(err, WorkflowError)
        ('no storage backend', False)
    """


_connected: weakref.WeakSet[StorageBackend] = weakref.WeakSet()
_default_storage: StorageBackend | None = None


async def ensure_connected(storage: StorageBackend) -> StorageBackend:
    """Call ``storage.connect()`` once per backend object."""
    if storage not in _connected:
        await storage.connect()
        _connected.add(storage)
    return storage


async def resolve_storage(storage: StorageBackend | None) -> StorageBackend:
    """The given storage, else the configured one, else the embedded SQLite default."""
    global _default_storage
    chosen = storage if storage is not None else get_config().storage
    if chosen is None:
        if _default_storage is None:
            _default_storage = config_to_storage({})
        chosen = _default_storage
    return await ensure_connected(chosen)


def embedded_storage_in_use() -> StorageBackend | None:
    """The embedded SQLite default, if this process has already opened it."""
    return _default_storage
