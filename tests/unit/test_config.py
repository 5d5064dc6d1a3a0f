"""Global configuration (API.md §1.1, §5.7, §8.8 and the "configure() first" decision)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pyworkflow.config as config_module
from pyworkflow.config import (
    PyWorkflowConfig,
    configure,
    configure_from_yaml,
    get_config,
    get_storage,
    reset_config,
)
from pyworkflow.serialization.encoder import is_pickle_allowed, set_pickle_allowed
from pyworkflow.storage.memory import InMemoryStorageBackend

_ENV_VARS = [
    "PYWORKFLOW_RUNTIME",
    "PYWORKFLOW_STORAGE_TYPE",
    "PYWORKFLOW_STORAGE_BACKEND",
    "PYWORKFLOW_STORAGE_PATH",
    "PYWORKFLOW_CELERY_BROKER",
    "PYWORKFLOW_DISCOVER",
    *(f"PYWORKFLOW_{db}_{key}" for db in ("POSTGRES", "MYSQL") for key in ("HOST", "PORT")),
    *(f"PYWORKFLOW_{db}_{key}" for db in ("POSTGRES", "MYSQL") for key in ("USER", "PASSWORD")),
    "PYWORKFLOW_POSTGRES_DATABASE",
    "PYWORKFLOW_MYSQL_DATABASE",
]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty cwd, no PYWORKFLOW_* env, a fresh config and pickle restored afterwards."""
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    pickle_before = is_pickle_allowed()
    reset_config()
    yield tmp_path
    reset_config()
    set_pickle_allowed(pickle_before)


def _write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = PyWorkflowConfig()
    assert config.default_runtime == "local" and config.default_durable is False
    assert config.default_retries == 3 and config.default_max_recovery_attempts == 3
    assert config.default_recover_on_worker_loss is None
    assert config.storage is None and config.celery_broker is None and config.aws_region is None
    assert (config.event_soft_limit, config.event_hard_limit, config.event_warning_interval) == (
        10_000,
        50_000,
        100,
    )
    assert config.allow_pickle is True


def test_get_config_without_env_or_yaml_keeps_upstream_defaults() -> None:
    config = get_config()
    assert config.default_runtime == "local" and config.default_durable is False
    assert config.storage is None and get_storage() is None
    assert get_config() is config  # cached


def test_reset_config_rebuilds() -> None:
    first = get_config()
    reset_config()
    assert get_config() is not first


def test_configure_sets_fields() -> None:
    storage = InMemoryStorageBackend()
    configure(storage=storage, default_durable=True, default_runtime="local")
    assert get_storage() is storage and get_config().default_durable is True


def test_unknown_option_raises_and_changes_nothing() -> None:
    with pytest.raises(ValueError, match=r"Unknown config option: bogus\. Valid options: ") as err:
        configure(default_durable=True, bogus=1)
    assert "default_runtime" in str(err.value) and "allow_pickle" in str(err.value)
    assert get_config().default_durable is False


def test_event_limit_warning_is_single_and_sorted() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configure(event_warning_interval=10, event_hard_limit=100, event_soft_limit=50)
    assert len(caught) == 1
    assert caught[0].category is UserWarning
    message = str(caught[0].message)
    assert "not recommended" in message
    assert "event_hard_limit, event_soft_limit, event_warning_interval" in message
    assert caught[0].filename == __file__  # points at the caller's line
    assert get_config().event_hard_limit == 100


def test_event_limit_warning_names_only_changed_keys() -> None:
    with pytest.warns(UserWarning, match="not recommended") as record:
        configure(event_soft_limit=5)
    assert len(record) == 1
    assert "event_soft_limit" in str(record[0].message)
    assert "event_hard_limit" not in str(record[0].message)


def test_no_warning_for_other_keys() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configure(default_retries=5)


def test_allow_pickle_drives_the_serializer() -> None:
    configure(allow_pickle=False)
    assert is_pickle_allowed() is False and get_config().allow_pickle is False
    configure(allow_pickle=True)
    assert is_pickle_allowed() is True
    configure(allow_pickle=False)
    reset_config()
    assert is_pickle_allowed() is True


def test_configure_from_yaml_keeps_the_pickle_setting(tmp_path: Path) -> None:
    configure(allow_pickle=False)
    configure_from_yaml(_write_yaml(tmp_path / "c.yaml", "runtime: local\n"), discover=False)
    assert get_config().allow_pickle is False and is_pickle_allowed() is False


# --- env and YAML --------------------------------------------------------------------


def test_yaml_in_cwd_is_read(tmp_path: Path) -> None:
    _write_yaml(
        tmp_path / "pyworkflow.config.yaml",
        "runtime: celery\nstorage:\n  type: memory\ncelery:\n  broker: redis://b:6379/0\n",
    )
    config = get_config()
    assert config.default_runtime == "celery" and config.default_durable is True
    assert isinstance(config.storage, InMemoryStorageBackend)
    assert config.celery_broker == "redis://b:6379/0"


def test_yaml_without_storage_leaves_storage_none(tmp_path: Path) -> None:
    _write_yaml(tmp_path / "pyworkflow.config.yaml", "runtime: local\n")
    assert get_config().storage is None


def test_yaml_legacy_storage_keys(tmp_path: Path) -> None:
    from pyworkflow.storage.file import FileStorageBackend

    _write_yaml(
        tmp_path / "pyworkflow.config.yaml", "storage:\n  backend: file\n  path: ./legacy\n"
    )
    storage = get_config().storage
    assert isinstance(storage, FileStorageBackend)
    assert Path(storage.base_path) == Path("./legacy")


def test_env_wins_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_yaml(
        tmp_path / "pyworkflow.config.yaml",
        "runtime: celery\nstorage:\n  type: file\ncelery:\n  broker: redis://yaml\n",
    )
    monkeypatch.setenv("PYWORKFLOW_RUNTIME", "local")
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "memory")
    monkeypatch.setenv("PYWORKFLOW_CELERY_BROKER", "redis://env")
    config = get_config()
    assert config.default_runtime == "local" and config.default_durable is False
    assert isinstance(config.storage, InMemoryStorageBackend)
    assert config.celery_broker == "redis://env"


def test_env_storage_backend_alias_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyworkflow.storage.sqlite import SQLiteStorageBackend

    monkeypatch.setenv("PYWORKFLOW_STORAGE_BACKEND", "sqlite")
    monkeypatch.setenv("PYWORKFLOW_STORAGE_PATH", str(tmp_path / "env.db"))
    storage = get_config().storage
    assert isinstance(storage, SQLiteStorageBackend) and storage.db_path == tmp_path / "env.db"


def test_env_file_storage_default_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyworkflow.storage.file import FileStorageBackend

    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "file")
    storage = get_config().storage
    assert isinstance(storage, FileStorageBackend)
    assert Path(storage.base_path) == Path("./pyworkflow_data")


def test_env_postgres_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    postgres = pytest.importorskip("pyworkflow.storage.postgres")
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "postgres")
    monkeypatch.setenv("PYWORKFLOW_POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("PYWORKFLOW_POSTGRES_PORT", "6543")
    storage = get_config().storage
    assert isinstance(storage, postgres.PostgresStorageBackend)
    assert (storage.host, storage.port, storage.user, storage.database) == (
        "db.internal",
        6543,
        "pyworkflow",
        "pyworkflow",
    )


def test_env_postgres_dsn_wins_over_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    postgres = pytest.importorskip("pyworkflow.storage.postgres")
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "postgres")
    monkeypatch.setenv("PYWORKFLOW_POSTGRES_DSN", "postgresql://app:pw@db.internal:6543/orders")
    monkeypatch.setenv("PYWORKFLOW_POSTGRES_HOST", "ignored")
    storage = get_config().storage
    assert isinstance(storage, postgres.PostgresStorageBackend)
    assert storage.dsn == "postgresql://app:pw@db.internal:6543/orders"


def test_env_postgres_defaults_and_bad_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "postgres")
    monkeypatch.setenv("PYWORKFLOW_POSTGRES_PORT", "five")
    with pytest.raises(ValueError, match="PYWORKFLOW_POSTGRES_PORT must be a port number"):
        get_config()
    options = config_module._sql_server_from_env({}, "postgres")
    assert options == {
        "host": "localhost",
        "user": "pyworkflow",
        "password": "",
        "database": "pyworkflow",
        "port": 5432,
    }
    assert config_module._sql_server_from_env({}, "mysql")["port"] == 3306


def test_env_mysql_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "mysql")
    with pytest.raises(ValueError, match=r"PYWORKFLOW_STORAGE_TYPE=mysql.*not supported"):
        get_config()


def test_env_bad_storage_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "oracle")
    with pytest.raises(ValueError, match="PYWORKFLOW_STORAGE_TYPE='oracle' is not a storage type"):
        get_config()


def test_env_path_without_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWORKFLOW_STORAGE_PATH", "./x.db")
    with pytest.raises(ValueError, match="Set PYWORKFLOW_STORAGE_TYPE=sqlite or file"):
        get_config()


def test_bad_yaml_storage_names_the_key(tmp_path: Path) -> None:
    _write_yaml(tmp_path / "pyworkflow.config.yaml", "storage:\n  type: nosql\n")
    with pytest.raises(ValueError, match=r"'storage' in pyworkflow\.config\.yaml: Unknown storage"):
        get_config()
    _write_yaml(tmp_path / "pyworkflow.config.yaml", "storage: sqlite\n")
    with pytest.raises(
        ValueError, match=r"'storage' in pyworkflow\.config\.yaml must be a mapping"
    ):
        get_config()


def test_malformed_cwd_yaml_is_an_error(tmp_path: Path) -> None:
    _write_yaml(tmp_path / "pyworkflow.config.yaml", "runtime: [unclosed\n")
    with pytest.raises(ValueError, match=r"Invalid YAML in .*pyworkflow\.config\.yaml"):
        get_config()
    _write_yaml(tmp_path / "pyworkflow.config.yaml", "- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        get_config()


# --- configure() precedence (our decision) -------------------------------------------


def test_configure_first_loads_env_and_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_yaml(tmp_path / "pyworkflow.config.yaml", "celery:\n  broker: redis://yaml\n")
    monkeypatch.setenv("PYWORKFLOW_RUNTIME", "celery")
    configure(default_retries=7)
    config = get_config()
    assert config.default_retries == 7
    assert config.default_runtime == "celery" and config.default_durable is True
    assert config.celery_broker == "redis://yaml"


def test_configure_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "memory")
    mine = InMemoryStorageBackend()
    configure(storage=mine, default_durable=False)
    assert get_storage() is mine


def test_configure_module_discovers(tmp_path: Path) -> None:
    (tmp_path / "cfg_discover_mod.py").write_text("LOADED = True\n")
    try:
        configure(module="cfg_discover_mod")
        assert "cfg_discover_mod" in sys.modules
        configure(module="cfg_not_imported_mod", discover=False)
        assert "cfg_not_imported_mod" not in sys.modules
    finally:
        sys.modules.pop("cfg_discover_mod", None)


# --- configure_from_yaml -------------------------------------------------------------


def test_configure_from_yaml_replaces_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYWORKFLOW_CELERY_BROKER", "redis://env")  # not consulted
    configure(default_retries=9)
    path = _write_yaml(tmp_path / "deploy.yaml", "runtime: celery\nstorage:\n  type: memory\n")
    configure_from_yaml(path, discover=False)
    config = get_config()
    assert config.default_runtime == "celery" and config.default_durable is True
    assert isinstance(config.storage, InMemoryStorageBackend)
    assert config.default_retries == 3 and config.celery_broker is None


def test_configure_from_yaml_discovers_modules(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "yaml_discover_mod.py").write_text("VALUE = 1\n")
    path = _write_yaml(sub / "app.yaml", "modules:\n  - yaml_discover_mod\n")
    try:
        configure_from_yaml(str(path))  # the YAML's directory goes on sys.path
        assert "yaml_discover_mod" in sys.modules
    finally:
        sys.modules.pop("yaml_discover_mod", None)


def test_configure_from_yaml_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="Config file not found"):
        configure_from_yaml(tmp_path / "missing.yaml")
    bad = _write_yaml(tmp_path / "bad.yaml", "storage: {type: file\n")
    with pytest.raises(ValueError, match="Invalid YAML"):
        configure_from_yaml(bad)
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match="PyYAML"):
        configure_from_yaml(_write_yaml(tmp_path / "ok.yaml", "runtime: local\n"))


def test_empty_yaml_file_is_fine(tmp_path: Path) -> None:
    configure_from_yaml(_write_yaml(tmp_path / "empty.yaml", ""), discover=False)
    assert get_config().default_runtime == "local"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("default_durable", "yes", "must be True or False"),
        ("default_recover_on_worker_loss", 1, "must be True, False or None"),
        ("event_soft_limit", 0, "must be an integer >= 1"),
        ("default_retries", True, "must be an integer >= 0"),
        ("event_hard_limit", "10", "must be an integer >= 1"),
    ],
)
def test_option_values_are_checked(key: str, value: Any, expected: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rejected before the event-limit warning
        with pytest.raises(ValueError, match=f"Config option {key} {expected}"):
            configure(**{key: value})


def test_explicit_storage_skips_building_the_env_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYWORKFLOW_STORAGE_TYPE", "sqlite")
    configure(storage=InMemoryStorageBackend(), default_recover_on_worker_loss=None)
    assert not (tmp_path / "pyworkflow_data").exists()
    assert isinstance(get_storage(), InMemoryStorageBackend)
