"""storage_to_config / config_to_storage (API.md §2, "embedded default" decision)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from pyworkflow.storage.config import config_to_storage, storage_to_config
from pyworkflow.storage.memory import InMemoryStorageBackend


def _fake(class_name: str, **attrs: Any) -> Any:
    """An object whose class has a backend's name: storage_to_config keys on the name."""
    return type(class_name, (), attrs)()


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- storage_to_config ---------------------------------------------------------------


def test_none_gives_none() -> None:
    assert storage_to_config(None) is None


def test_memory_round_trip() -> None:
    assert storage_to_config(InMemoryStorageBackend()) == {"type": "memory"}
    assert isinstance(config_to_storage({"type": "memory"}), InMemoryStorageBackend)


def test_file_and_sqlite_are_keyed_on_class_name() -> None:
    assert storage_to_config(_fake("FileStorageBackend", base_path=Path("/d"))) == {
        "type": "file",
        "base_path": "/d",
    }
    assert storage_to_config(_fake("SQLiteStorageBackend", db_path=Path("/d/x.db"))) == {
        "type": "sqlite",
        "base_path": "/d/x.db",
    }


def test_sql_servers_prefer_dsn_else_parameters() -> None:
    dsn = "postgresql://u:p@h:1/db"
    assert storage_to_config(_fake("PostgresStorageBackend", dsn=dsn)) == {
        "type": "postgres",
        "dsn": dsn,
    }
    params = {"host": "h", "port": 5433, "user": "u", "password": "p", "database": "d"}
    assert storage_to_config(_fake("PostgresStorageBackend", dsn=None, **params)) == {
        "type": "postgres",
        **params,
    }
    assert storage_to_config(_fake("MySQLStorageBackend", dsn=None, **params)) == {
        "type": "mysql",
        **params,
    }


def test_other_upstream_backends_and_unknown() -> None:
    dynamo = _fake("DynamoDBStorageBackend", table_name="t", region="r", endpoint_url=None)
    assert storage_to_config(dynamo) == {
        "type": "dynamodb",
        "table_name": "t",
        "region": "r",
        "endpoint_url": None,
    }
    cassandra = storage_to_config(_fake("CassandraStorageBackend", keyspace="k", port=9042))
    assert cassandra is not None
    assert cassandra["type"] == "cassandra" and cassandra["keyspace"] == "k"
    assert "replication_factor" in cassandra and "connect_timeout" in cassandra
    assert storage_to_config(_fake("MyOwnBackend")) == {"type": "unknown"}


# --- config_to_storage ---------------------------------------------------------------


@pytest.mark.parametrize("config", [None, {}, {"base_path": None}])
def test_empty_config_gives_embedded_sqlite(config: Any, in_tmp: Path) -> None:
    from pyworkflow.storage.sqlite import SQLiteStorageBackend

    storage = config_to_storage(config)
    assert isinstance(storage, SQLiteStorageBackend)
    assert storage.db_path == Path("./pyworkflow_data/pyworkflow.db")


def test_sqlite_with_and_without_path(in_tmp: Path) -> None:
    from pyworkflow.storage.sqlite import SQLiteStorageBackend

    default = config_to_storage({"type": "sqlite"})
    assert isinstance(default, SQLiteStorageBackend)
    assert default.db_path == Path("./pyworkflow_data/pyworkflow.db")
    custom = config_to_storage({"type": "sqlite", "base_path": str(in_tmp / "x" / "wf.db")})
    assert storage_to_config(custom) == {"type": "sqlite", "base_path": str(in_tmp / "x/wf.db")}
    no_type = config_to_storage({"base_path": str(in_tmp / "y.db")})
    assert isinstance(no_type, SQLiteStorageBackend) and no_type.db_path == in_tmp / "y.db"


def test_file_defaults_to_pyworkflow_data(in_tmp: Path) -> None:
    from pyworkflow.storage.file import FileStorageBackend

    storage = config_to_storage({"type": "file"})
    assert isinstance(storage, FileStorageBackend)
    assert Path(storage.base_path) == Path("./pyworkflow_data")
    custom = config_to_storage({"type": "file", "base_path": str(in_tmp / "data")})
    assert storage_to_config(custom) == {"type": "file", "base_path": str(in_tmp / "data")}


def test_legacy_backend_and_path_keys(in_tmp: Path) -> None:
    from pyworkflow.storage.file import FileStorageBackend

    storage = config_to_storage({"backend": "file", "path": str(in_tmp / "legacy")})
    assert isinstance(storage, FileStorageBackend)
    assert Path(storage.base_path) == in_tmp / "legacy"


def test_postgres_from_dsn_and_from_parameters() -> None:
    postgres = pytest.importorskip("pyworkflow.storage.postgres")
    PostgresStorageBackend = postgres.PostgresStorageBackend

    dsn = "postgresql://u:p@db.example:5433/wf"
    by_dsn = config_to_storage({"type": "postgres", "dsn": dsn})
    assert isinstance(by_dsn, PostgresStorageBackend)
    assert storage_to_config(by_dsn) == {"type": "postgres", "dsn": dsn}
    params = {"host": "h", "port": "5433", "user": "u", "password": "p", "database": "d"}
    by_params = config_to_storage({"type": "postgres", **params, "max_pool_size": 4})
    assert isinstance(by_params, PostgresStorageBackend)
    assert by_params.port == 5433 and by_params.max_pool_size == 4
    assert storage_to_config(by_params) == {"type": "postgres", **params, "port": 5433}


def test_postgres_bad_port() -> None:
    pytest.importorskip("pyworkflow.storage.postgres")
    with pytest.raises(ValueError, match="'port' must be an integer, got 'abc'"):
        config_to_storage({"type": "postgres", "port": "abc"})


def test_redis_is_not_implemented() -> None:
    with pytest.raises(ValueError, match="Redis storage is not implemented"):
        config_to_storage({"type": "redis"})


@pytest.mark.parametrize("kind", ["mysql", "dynamodb", "cassandra"])
def test_upstream_only_backends_are_refused_clearly(kind: str) -> None:
    with pytest.raises(ValueError, match=f"The {kind} storage backend is not supported") as err:
        config_to_storage({"type": kind})
    assert "sqlite, file, memory, postgres" in str(err.value)


def test_unknown_type_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="Unknown storage type: nosql") as err:
        config_to_storage({"type": "nosql"})
    assert "sqlite, file, memory, postgres" in str(err.value)
    with pytest.raises(ValueError, match="must be a string"):
        config_to_storage({"type": 3})


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"Unknown option.*file storage: base_pth"):
        config_to_storage({"type": "file", "base_pth": "./x"})


def test_missing_driver_gives_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import` raise ImportError, as a missing driver does.
    monkeypatch.setitem(sys.modules, "pyworkflow.storage.postgres", None)
    with pytest.raises(ValueError, match=r"pip install 'pyworkflow\[postgres\]'"):
        config_to_storage({"type": "postgres", "dsn": "postgresql://x"})
    # SQLite has no such case: aiosqlite is a core dependency (the embedded default).
