"""Import the user's workflow modules so that their decorators register them.

A Celery worker or the CLI starts in a fresh process that has never imported the
application's code; before it can run ``order_workflow`` it must import the module
defining it. Modules come from, in priority order: the ``module_path`` argument, the
``PYWORKFLOW_DISCOVER`` env var (comma-separated), ``module``/``modules`` of a config
dict, then ``module``/``modules`` of ``./pyworkflow.config.yaml``.

Example (not run: it imports your application)::

    from pyworkflow.discovery import discover_workflows
    discover_workflows("myapp.workflows")
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from pyworkflow.config import CONFIG_FILE_NAME, read_yaml_config

#: Files whose presence marks a project root, which is put on ``sys.path``.
_ROOT_MARKERS = ("pyproject.toml", "setup.py", ".git")


class DiscoveryError(Exception):
    """A workflow module could not be imported.

    ``module`` is the dotted name that failed; the original error is ``__cause__``.

    Example:
        >>> err = DiscoveryError("Failed to import 'x'", module="x")
        >>> err.module
        'x'
    """

    def __init__(self, message: str, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


def discover_workflows(
    module_path: str | None = None,
    config: Mapping[str, Any] | None = None,
    config_path: str | Path | None = None,
) -> None:
    """Import the workflow modules of the first source that names any.

    The cwd, the project root (first ancestor with ``pyproject.toml``, ``setup.py`` or
    ``.git``) and the directory of ``config_path`` are put on ``sys.path`` first. An
    import failure raises :class:`DiscoveryError`; no source at all does nothing.

    Example:
        >>> discover_workflows(config={"modules": ["json", "csv"]})
    """
    _extend_sys_path(config_path)
    modules = _modules_to_import(module_path, config)
    for name in modules:
        _import(name)
    if modules:
        logger.debug("Discovered workflow modules: {}", ", ".join(modules))


def _extend_sys_path(config_path: str | Path | None) -> None:
    cwd = Path.cwd()
    candidates = [cwd, _project_root(cwd)]
    if config_path is not None:
        candidates.append(Path(config_path).resolve().parent)
    for directory in candidates:
        entry = str(directory)
        if entry not in sys.path:
            # In front, as ``python -m`` does for the cwd: the user's package must win
            # over an installed distribution of the same name.
            sys.path.insert(0, entry)


def _project_root(start: Path) -> Path:
    for directory in (start, *start.parents):
        if any((directory / marker).exists() for marker in _ROOT_MARKERS):
            return directory
    return start


def _modules_to_import(module_path: str | None, config: Mapping[str, Any] | None) -> list[str]:
    if module_path:
        return _split(module_path)
    env_value = os.environ.get("PYWORKFLOW_DISCOVER", "")
    if env_value.strip():
        return _split(env_value)
    if config is not None:
        names = _from_config(config, "the config")
        if names:
            return names
    yaml_path = Path.cwd() / CONFIG_FILE_NAME
    if yaml_path.is_file():
        return _from_config(read_yaml_config(yaml_path), str(yaml_path))
    return []


def _split(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _from_config(config: Mapping[str, Any], source: str) -> list[str]:
    names: list[str] = []
    single = config.get("module")
    if single:
        if not isinstance(single, str):
            raise DiscoveryError(f"'module' in {source} must be a dotted module name string.")
        names.extend(_split(single))
    several = config.get("modules") or []
    if isinstance(several, str) or not isinstance(several, list):
        raise DiscoveryError(
            f"'modules' in {source} must be a list of module names, e.g. [myapp.workflows]."
        )
    for item in several:
        if not isinstance(item, str):
            raise DiscoveryError(f"'modules' in {source} holds {item!r}, not a module name.")
        names.extend(_split(item))
    return list(dict.fromkeys(names))  # de-duplicated, order kept


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as exc:
        hint = (
            "Check the module name and that its package is importable (on PYTHONPATH, "
            "or under the current directory or project root)."
        )
        if name.endswith(".py") or "/" in name or "\\" in name:
            hint = f"Use a dotted module name such as 'myapp.workflows', not a file path. {hint}"
        raise DiscoveryError(
            f"Failed to import workflow module '{name}': {type(exc).__name__}: {exc}. {hint}",
            module=name,
        ) from exc
