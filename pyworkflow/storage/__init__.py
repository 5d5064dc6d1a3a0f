"""Storage backends: the protocol, the records, and the implementations.

Optional backends whose driver is missing are ``None``.

Example:
    >>> from pyworkflow.storage import config_to_storage, storage_to_config
    >>> storage_to_config(config_to_storage({"type": "memory"}))
    {'type': 'memory'}
"""

from __future__ import annotations

import importlib
from typing import Any

from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.config import config_to_storage, storage_to_config
from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import (
    Hook,
    HookStatus,
    RunStatus,
    StepExecution,
    StepStatus,
    WorkflowRun,
)
from pyworkflow.storage.sqlite import SQLiteStorageBackend


def _optional(module: str, name: str) -> Any:
    """The class, or None when its module or driver is not installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None


# Needs asyncpg (the "postgres" extra).
PostgresStorageBackend: Any = _optional("pyworkflow.storage.postgres", "PostgresStorageBackend")

# Not provided by this package (see config_to_storage for the supported types).
MySQLStorageBackend: Any = None
DynamoDBStorageBackend: Any = None
CassandraStorageBackend: Any = None

__all__ = [
    "CassandraStorageBackend",
    "DynamoDBStorageBackend",
    "FileStorageBackend",
    "Hook",
    "HookStatus",
    "InMemoryStorageBackend",
    "MySQLStorageBackend",
    "PostgresStorageBackend",
    "RunStatus",
    "SQLiteStorageBackend",
    "StepExecution",
    "StepStatus",
    "StorageBackend",
    "WorkflowRun",
    "config_to_storage",
    "storage_to_config",
]
