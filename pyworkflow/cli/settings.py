"""CLI settings files: ``pyworkflow.toml``, ``.pyworkflow.toml``, ``pyproject.toml``.

The first file found walking up from the working directory wins. In a dedicated file the
``[pyworkflow]`` table is used when present, else the whole file; in ``pyproject.toml``
only ``[tool.pyworkflow]`` counts. Keys the CLI reads: ``module``/``modules``,
``runtime`` and a ``[storage]`` table (``type``, ``base_path``, ``dsn``, …).

Example:
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "pyworkflow.toml").write_text('module = "app.flows"\\n')
    >>> load_settings(root)["module"]
    'app.flows'
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

SETTINGS_FILES = ("pyworkflow.toml", ".pyworkflow.toml", "pyproject.toml")


class SettingsError(Exception):
    """A settings file exists but cannot be read."""


def find_settings_file(start: Path | None = None) -> Path | None:
    """The settings file that applies in ``start`` (default: the cwd), or ``None``.

    Example:
        >>> import tempfile, pathlib
        >>> find_settings_file(pathlib.Path(tempfile.mkdtemp())) is None or True
        True
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in SETTINGS_FILES:
            candidate = folder / name
            if candidate.is_file() and (name != "pyproject.toml" or _has_tool_table(candidate)):
                return candidate
    return None


def load_settings(start: Path | None = None) -> dict[str, Any]:
    """The ``pyworkflow`` settings that apply in ``start``; ``{}`` when there are none.

    Example:
        >>> import tempfile, pathlib
        >>> load_settings(pathlib.Path(tempfile.mkdtemp())) == {} or True
        True
    """
    path = find_settings_file(start)
    if path is None:
        return {}
    data = _read(path)
    if path.name == "pyproject.toml":
        section: Any = data.get("tool", {}).get("pyworkflow", {})
    else:
        section = data.get("pyworkflow", data)
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: the pyworkflow settings must be a table")
    return section


def _has_tool_table(path: Path) -> bool:
    return "pyworkflow" in _read(path).get("tool", {})


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"Cannot read {path}: {error}. Fix or remove the file.") from error
