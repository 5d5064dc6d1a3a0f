"""Global configuration: defaults, env vars, ``pyworkflow.config.yaml`` and ``configure()``.

Precedence, lowest first: the :class:`PyWorkflowConfig` defaults, the YAML file in the
current directory, the ``PYWORKFLOW_*`` environment variables, then the keyword
arguments of :func:`configure`. Unlike upstream 0.1.10, ``configure()`` loads env and
YAML before applying its overrides, so calling it never discards the deployment's
settings.

Example:
    >>> from pyworkflow.config import configure, get_config, reset_config
    >>> reset_config()
    >>> configure(default_durable=True)
    >>> get_config().default_durable
    True
    >>> reset_config()
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pyworkflow.serialization.encoder import is_pickle_allowed, set_pickle_allowed
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.config import config_to_storage

#: The YAML file read from the current directory.
CONFIG_FILE_NAME = "pyworkflow.config.yaml"

_EVENT_LIMIT_KEYS = frozenset({"event_soft_limit", "event_hard_limit", "event_warning_interval"})
_BOOL_OPTIONS = frozenset({"default_durable", "default_recover_on_worker_loss", "allow_pickle"})
_OPTIONAL = frozenset({"default_recover_on_worker_loss"})
_INT_OPTIONS = _EVENT_LIMIT_KEYS | {"default_retries", "default_max_recovery_attempts"}
_ENV_STORAGE_TYPES = ("sqlite", "file", "memory", "postgres", "mysql")
_SQL_ENV_DEFAULTS = {
    "HOST": "localhost",
    "USER": "pyworkflow",
    "PASSWORD": "",
    "DATABASE": "pyworkflow",
}


@dataclass
class PyWorkflowConfig:
    """Process-wide settings. Build it with :func:`configure`, read it with :func:`get_config`.

    ``default_recover_on_worker_loss=None`` means "recover durable runs". ``allow_pickle``
    controls the cloudpickle fallback of the serializer (ours; upstream always pickles).

    Example:
        >>> PyWorkflowConfig().default_runtime, PyWorkflowConfig().event_hard_limit
        ('local', 50000)
    """

    default_runtime: str = "local"
    default_durable: bool = False
    default_retries: int = 3
    default_recover_on_worker_loss: bool | None = None
    default_max_recovery_attempts: int = 3
    storage: StorageBackend | None = None
    celery_broker: str | None = None
    aws_region: str | None = None
    event_soft_limit: int = 10_000
    event_hard_limit: int = 50_000
    event_warning_interval: int = 100
    allow_pickle: bool = True


_config: PyWorkflowConfig | None = None
# Guards building and replacing ``_config``: two threads racing the first get_config()
# must not each read the YAML and create two storage backends.
_lock = threading.RLock()


def configure(*, module: str | None = None, discover: bool = True, **kwargs: Any) -> None:
    """Set global options, after loading env vars and ``./pyworkflow.config.yaml`` if needed.

    Keys are :class:`PyWorkflowConfig` field names; an unknown key raises ``ValueError``
    and changes nothing. Changing an event limit warns once (not recommended). With
    ``module`` (and ``discover``), that module is imported so its workflows register.

    Example:
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> configure(storage=InMemoryStorageBackend(), default_durable=True)
        >>> reset_config()
    """
    valid = [f.name for f in fields(PyWorkflowConfig)]
    for key, value in kwargs.items():
        if key not in valid:
            raise ValueError(f"Unknown config option: {key}. Valid options: {', '.join(valid)}")
        _check_value(key, value)
    changed_limits = sorted(_EVENT_LIMIT_KEYS.intersection(kwargs))
    if changed_limits:
        warnings.warn(
            "Changing event limits is not recommended: "
            f"{', '.join(changed_limits)}. The defaults keep replay fast and storage "
            "bounded; prefer continue_as_new() for long-running workflows.",
            UserWarning,
            stacklevel=2,
        )
    with _lock:
        global _config
        # An explicit storage makes building the env/YAML one pointless (SQLite would
        # even create its directory), so it is skipped.
        config = _config if _config is not None else _load_config("storage" not in kwargs)
        for key, value in kwargs.items():
            setattr(config, key, value)
        _config = config
        if "allow_pickle" in kwargs:
            set_pickle_allowed(bool(kwargs["allow_pickle"]))
    if module and discover:
        # Imported here: discovery reads the YAML through this module.
        from pyworkflow.discovery import discover_workflows

        discover_workflows(module_path=module)


def _check_value(key: str, value: object) -> None:
    """Reject values of the wrong kind now, rather than failing later inside a run."""
    if key in _BOOL_OPTIONS:
        if isinstance(value, bool) or (value is None and key in _OPTIONAL):
            return
        allowed = "True, False or None" if key in _OPTIONAL else "True or False"
        raise ValueError(f"Config option {key} must be {allowed}, got {value!r}.")
    if key in _INT_OPTIONS:
        minimum = 1 if key in _EVENT_LIMIT_KEYS else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"Config option {key} must be an integer >= {minimum}, got {value!r}.")


def configure_from_yaml(path: str | Path, discover: bool = True) -> None:
    """Replace the global config with one built from the YAML file at ``path``.

    Reads ``runtime`` (``celery`` implies durable), ``storage`` and ``celery.broker``;
    env vars are not consulted. The serializer's pickle setting is kept. With
    ``discover``, the file's ``module``/``modules`` are imported.

    Example (not run: it replaces the global configuration)::

        configure_from_yaml("deploy/pyworkflow.config.yaml")
    """
    yaml_path = Path(path)
    if not yaml_path.is_file():
        raise FileNotFoundError(
            f"Config file not found: {yaml_path}. Pass the path of an existing {CONFIG_FILE_NAME}."
        )
    data = read_yaml_config(yaml_path)
    config = _build_config(data, {}, str(yaml_path))
    with _lock:
        global _config
        _config = config
    if discover:
        from pyworkflow.discovery import discover_workflows

        discover_workflows(config=data, config_path=str(yaml_path))


def get_config() -> PyWorkflowConfig:
    """Return the global config, building it from env vars and the YAML file on first use.

    Example:
        >>> get_config().default_runtime in ("local", "celery")
        True
    """
    global _config
    config = _config
    if config is not None:
        return config
    with _lock:
        if _config is None:
            _config = _load_config()
        return _config


def reset_config() -> None:
    """Drop the global config (the next :func:`get_config` rebuilds it) and allow pickle again.

    Example:
        >>> reset_config()
    """
    global _config
    with _lock:
        _config = None
        # allow_pickle is a config option: resetting the config resets the serializer too.
        set_pickle_allowed(True)


def get_storage() -> StorageBackend | None:
    """Return the configured storage backend, or None when none is configured.

    Example:
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> configure(storage=InMemoryStorageBackend())
        >>> type(get_storage()).__name__
        'InMemoryStorageBackend'
        >>> reset_config()
    """
    return get_config().storage


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """Parse a ``pyworkflow.config.yaml`` into a dict (an empty file gives ``{}``).

    Raises ``ValueError`` naming the file for bad YAML or a non-mapping document, and
    ``ImportError`` when PyYAML is missing.

    Example (not run: it reads a file)::

        read_yaml_config("pyworkflow.config.yaml")
        # {'module': 'myapp.workflows', 'runtime': 'local'}
    """
    try:
        import yaml
    except ImportError as exc:
        raise ImportError(
            f"PyYAML is needed to read {path}. Install it with: pip install pyyaml"
        ) from exc
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"Invalid YAML in {path}: {exc}. Fix the syntax of the file.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} must hold a mapping of options (module, runtime, storage, celery), "
            f"not a {type(data).__name__}."
        )
    return data


def _load_config(with_storage: bool = True) -> PyWorkflowConfig:
    """Build a config from ``./pyworkflow.config.yaml`` (if present) and the environment."""
    yaml_path = Path.cwd() / CONFIG_FILE_NAME
    data = read_yaml_config(yaml_path) if yaml_path.is_file() else {}
    return _build_config(data, os.environ, CONFIG_FILE_NAME, with_storage)


def _build_config(
    data: Mapping[str, Any], env: Mapping[str, str], source: str, with_storage: bool = True
) -> PyWorkflowConfig:
    """Combine YAML ``data`` and ``env`` (env wins); ``source`` names the YAML in errors."""
    runtime = env.get("PYWORKFLOW_RUNTIME") or data.get("runtime") or "local"
    if not isinstance(runtime, str):
        raise ValueError(f"'runtime' in {source} must be a string such as local or celery.")
    celery = data.get("celery") or {}
    if not isinstance(celery, Mapping):
        raise ValueError(f"'celery' in {source} must be a mapping with a 'broker' key.")
    broker = env.get("PYWORKFLOW_CELERY_BROKER") or celery.get("broker")
    return PyWorkflowConfig(
        default_runtime=runtime.strip(),
        default_durable=runtime.strip() == "celery",
        storage=_build_storage(data, env, source) if with_storage else None,
        celery_broker=str(broker) if broker else None,
        # The serializer's setting is process-wide; mirror it rather than silently reset it.
        allow_pickle=is_pickle_allowed(),
    )


def _build_storage(
    data: Mapping[str, Any], env: Mapping[str, str], source: str
) -> StorageBackend | None:
    env_storage = _storage_config_from_env(env)
    if env_storage is not None:
        var, env_options = env_storage
        try:
            return config_to_storage(env_options)
        except ValueError as exc:
            raise ValueError(f"Storage from {var}: {exc}") from exc
    yaml_options = data.get("storage")
    if yaml_options is None:
        # The library keeps upstream's "no storage" default; the CLI picks SQLite.
        return None
    if not isinstance(yaml_options, Mapping):
        raise ValueError(
            f"'storage' in {source} must be a mapping such as {{type: sqlite, base_path: ...}}."
        )
    try:
        return config_to_storage(yaml_options)
    except ValueError as exc:
        raise ValueError(f"'storage' in {source}: {exc}") from exc


def _storage_config_from_env(env: Mapping[str, str]) -> tuple[str, dict[str, Any]] | None:
    """Return ``(variable, storage options)`` from ``PYWORKFLOW_STORAGE_*``, or None."""
    var = "PYWORKFLOW_STORAGE_TYPE"
    raw = env.get(var)
    if not raw:
        var = "PYWORKFLOW_STORAGE_BACKEND"
        raw = env.get(var)
    path = env.get("PYWORKFLOW_STORAGE_PATH")
    if not raw:
        if path:
            raise ValueError(
                "PYWORKFLOW_STORAGE_PATH is set but PYWORKFLOW_STORAGE_TYPE is not. "
                "Set PYWORKFLOW_STORAGE_TYPE=sqlite or file, or unset PYWORKFLOW_STORAGE_PATH."
            )
        return None
    kind = raw.strip().lower()
    if kind not in _ENV_STORAGE_TYPES:
        raise ValueError(
            f"{var}={raw!r} is not a storage type. Use one of: {', '.join(_ENV_STORAGE_TYPES)}."
        )
    options: dict[str, Any] = {"type": kind}
    if kind in ("sqlite", "file") and path:
        options["base_path"] = path
    elif kind in ("postgres", "mysql"):
        options.update(_sql_server_from_env(env, kind))
    return f"{var}={raw}", options


def _sql_server_from_env(env: Mapping[str, str], kind: str) -> dict[str, Any]:
    prefix = f"PYWORKFLOW_{kind.upper()}_"
    dsn = env.get(prefix + "DSN")
    if dsn:
        # One variable for everything, as the YAML's ``dsn:``; the parts are then ignored.
        return {"dsn": dsn}
    options: dict[str, Any] = {
        key.lower(): env.get(prefix + key, default) for key, default in _SQL_ENV_DEFAULTS.items()
    }
    port = env.get(prefix + "PORT", "5432" if kind == "postgres" else "3306").strip()
    if not port.isdigit():
        raise ValueError(f"{prefix}PORT must be a port number, got {port!r}.")
    options["port"] = int(port)
    return options
