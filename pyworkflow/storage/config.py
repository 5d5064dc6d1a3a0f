"""Turn a storage backend into a plain dict and back.

Celery tasks, the CLI and ``pyworkflow.config.yaml`` describe storage as a dict such as
``{"type": "sqlite", "base_path": "./pyworkflow_data/pyworkflow.db"}``; these helpers
convert between that form and a :class:`~pyworkflow.storage.base.StorageBackend`.

Where nothing is configured the embedded default is SQLite at
``./pyworkflow_data/pyworkflow.db``: durable, and no server needed.

Example:
    >>> from pyworkflow.storage.config import config_to_storage, storage_to_config
    >>> storage_to_config(config_to_storage({"type": "memory"}))
    {'type': 'memory'}
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend

if TYPE_CHECKING:
    from pyworkflow.storage.base import StorageBackend

#: The embedded default database used when no storage is configured.
DEFAULT_SQLITE_PATH = "./pyworkflow_data/pyworkflow.db"
#: Where ``{"type": "file"}`` keeps its data unless ``base_path`` says otherwise.
DEFAULT_FILE_PATH = "./pyworkflow_data"

#: The storage types this package implements, in the order error messages list them.
SUPPORTED_TYPES = ("sqlite", "file", "memory", "postgres")
# Upstream has these backends; we do not ship them (DESIGN: a backend outside the
# conformance suite is not supported), so naming them gets a specific message.
_UNSUPPORTED_TYPES = ("mysql", "dynamodb", "cassandra")

# Keys each type accepts. ``backend``/``path`` are the docs' legacy spellings of
# ``type``/``base_path``; ``db_path`` mirrors the SQLite constructor's argument.
_COMMON_KEYS = frozenset({"type", "backend"})
_VALID_KEYS: dict[str, frozenset[str]] = {
    "memory": _COMMON_KEYS,
    "file": _COMMON_KEYS | {"base_path", "path"},
    "sqlite": _COMMON_KEYS | {"base_path", "path", "db_path"},
    "postgres": _COMMON_KEYS
    | {"dsn", "host", "port", "user", "password", "database", "min_pool_size", "max_pool_size"},
}
_INT_KEYS = ("port", "min_pool_size", "max_pool_size")


def storage_to_config(storage: StorageBackend | None) -> dict[str, Any] | None:
    """Describe ``storage`` as a dict that :func:`config_to_storage` turns back into it.

    The backend is recognised by its class name, so no driver is imported. An
    unrecognised class gives ``{"type": "unknown"}``; ``None`` gives ``None``.

    Example:
        >>> from pyworkflow.storage.file import FileStorageBackend
        >>> storage_to_config(FileStorageBackend("/tmp/wf"))
        {'type': 'file', 'base_path': '/tmp/wf'}
    """
    if storage is None:
        return None
    kind = type(storage).__name__
    if kind == "InMemoryStorageBackend":
        return {"type": "memory"}
    if kind == "FileStorageBackend":
        return {"type": "file", "base_path": str(getattr(storage, "base_path"))}  # noqa: B009
    if kind == "SQLiteStorageBackend":
        return {"type": "sqlite", "base_path": str(getattr(storage, "db_path"))}  # noqa: B009
    if kind in ("PostgresStorageBackend", "MySQLStorageBackend"):
        return _sql_server_config("postgres" if kind.startswith("Postgres") else "mysql", storage)
    if kind == "DynamoDBStorageBackend":
        return _attrs_config("dynamodb", storage, ("table_name", "region", "endpoint_url"))
    if kind == "CassandraStorageBackend":
        return _attrs_config("cassandra", storage, _CASSANDRA_ATTRS)
    return {"type": "unknown"}


_CASSANDRA_ATTRS = (
    "contact_points",
    "port",
    "keyspace",
    "username",
    "password",
    "read_consistency",
    "write_consistency",
    "replication_strategy",
    "replication_factor",
    "datacenter",
    "protocol_version",
    "connect_timeout",
)


def _sql_server_config(kind: str, storage: object) -> dict[str, Any]:
    dsn = getattr(storage, "dsn", None)
    if dsn:
        return {"type": kind, "dsn": dsn}
    return _attrs_config(kind, storage, ("host", "port", "user", "password", "database"))


def _attrs_config(kind: str, storage: object, attrs: tuple[str, ...]) -> dict[str, Any]:
    config: dict[str, Any] = {"type": kind}
    for attr in attrs:
        config[attr] = getattr(storage, attr, None)
    return config


def config_to_storage(config: Mapping[str, Any] | None = None) -> StorageBackend:
    """Build a storage backend from a dict such as ``{"type": "file", "base_path": "./data"}``.

    ``None``, ``{}`` or a dict without ``type`` gives the embedded default, SQLite at
    ``./pyworkflow_data/pyworkflow.db``. Types: ``sqlite`` and ``file`` (``base_path``),
    ``memory``, ``postgres`` (``dsn`` or ``host``/``port``/``user``/``password``/
    ``database``, plus ``min_pool_size``/``max_pool_size``). Anything else, an unknown
    key or a missing driver raises ``ValueError`` saying what to change.

    Example:
        >>> type(config_to_storage({"type": "memory"})).__name__
        'InMemoryStorageBackend'
    """
    options = dict(config or {})
    kind = _storage_type(options)
    _check_keys(kind, options)
    if kind == "memory":
        return InMemoryStorageBackend()
    if kind == "file":
        return FileStorageBackend(base_path=_path(options, DEFAULT_FILE_PATH))
    if kind == "sqlite":
        return _sqlite_backend(_path(options, DEFAULT_SQLITE_PATH))
    return _postgres_backend(options)


def _storage_type(options: Mapping[str, Any]) -> str:
    raw = options.get("type", options.get("backend"))
    if raw is None:
        return "sqlite"
    if not isinstance(raw, str):
        raise ValueError(
            f"Storage 'type' must be a string, got {raw!r}. "
            f"Use one of: {', '.join(SUPPORTED_TYPES)}."
        )
    kind = raw.strip().lower()
    if kind == "postgresql":  # the URL scheme spelling; accepting it costs nothing
        kind = "postgres"
    if kind in _VALID_KEYS:
        return kind
    supported = ", ".join(SUPPORTED_TYPES)
    if kind == "redis":
        raise ValueError(
            f"Redis storage is not implemented (Redis serves only as the Celery broker). "
            f"Use one of: {supported}."
        )
    if kind in _UNSUPPORTED_TYPES:
        raise ValueError(
            f"The {kind} storage backend is not supported by this package. "
            f"Supported storage types: {supported}."
        )
    raise ValueError(f"Unknown storage type: {raw}. Valid storage types: {supported}.")


def _check_keys(kind: str, options: Mapping[str, Any]) -> None:
    # A misspelt key (``base_pth``) would otherwise silently fall back to a default path.
    unknown = sorted(str(key) for key in options if key not in _VALID_KEYS[kind])
    if unknown:
        raise ValueError(
            f"Unknown option(s) for {kind} storage: {', '.join(unknown)}. "
            f"Valid options: {', '.join(sorted(_VALID_KEYS[kind]))}."
        )


def _path(options: Mapping[str, Any], default: str) -> str:
    value = options.get("base_path") or options.get("path") or options.get("db_path")
    return str(value) if value else default


def _sqlite_backend(db_path: str) -> StorageBackend:
    # aiosqlite is a core dependency: the embedded default is always available.
    return SQLiteStorageBackend(db_path=db_path)


def _postgres_backend(options: Mapping[str, Any]) -> StorageBackend:
    try:
        # By name: the module is optional (asyncpg), and mypy must pass without it.
        postgres = importlib.import_module("pyworkflow.storage.postgres")
    except ImportError as exc:
        raise ValueError(
            f"PostgreSQL storage needs the asyncpg driver ({exc}). "
            "Install it with: pip install 'pyworkflow[postgres]'."
        ) from exc
    kwargs: dict[str, Any] = {
        key: options[key]
        for key in ("dsn", "host", "user", "password", "database")
        if options.get(key) is not None
    }
    for key in _INT_KEYS:
        if options.get(key) is not None:
            kwargs[key] = _as_int(key, options[key])
    backend: StorageBackend = postgres.PostgresStorageBackend(**kwargs)
    return backend


def _as_int(key: str, value: object) -> int:
    # YAML and env vars may hand over "5432" as a string; both spellings are fine.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"Postgres storage option '{key}' must be an integer, got {value!r}.")
