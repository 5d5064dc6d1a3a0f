"""What the root options chose, and the helpers every command uses to act on it.

Storage: ``--storage``/``--storage-path`` (env ``PYWORKFLOW_STORAGE_BACKEND`` /
``PYWORKFLOW_STORAGE_PATH``), else the ``[storage]`` table of a settings file
(:mod:`pyworkflow.cli.settings`), else the configured storage (env,
``pyworkflow.config.yaml``), else the embedded SQLite file
``./pyworkflow_data/pyworkflow.db``. Runtime: ``--runtime`` (env ``PYWORKFLOW_RUNTIME``),
else settings, else the configured default (``local`` unless the YAML says otherwise).

Example:
    >>> state = CLIState(storage_type="memory")
    >>> type(state.storage()).__name__, state.runtime_name()
    ('InMemoryStorageBackend', 'local')
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from pyworkflow.config import configure, get_config
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.config import config_to_storage

T = TypeVar("T")


@dataclass
class CLIState:
    """The root options, passed to every subcommand as ``ctx.obj``.

    Example:
        >>> CLIState(output="json").output
        'json'
    """

    module: str | None = None
    runtime: str | None = None
    storage_type: str | None = None
    storage_path: str | None = None
    output: str = "table"
    verbose: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    _storage: StorageBackend | None = field(default=None, repr=False)

    def storage(self) -> StorageBackend:
        """The storage the options, settings or configuration select (built once)."""
        if self._storage is None:
            self._storage = self._choose_storage()
        return self._storage

    def _choose_storage(self) -> StorageBackend:
        if self.storage_type or self.storage_path:
            cfg: dict[str, Any] = {"type": self.storage_type or "sqlite"}
            if self.storage_path:
                cfg["base_path"] = self.storage_path
            return config_to_storage(cfg)
        from_settings = self.settings.get("storage")
        if isinstance(from_settings, dict) and from_settings:
            return config_to_storage(from_settings)
        configured = get_config().storage
        return configured if configured is not None else config_to_storage({})

    def runtime_name(self) -> str:
        """``local`` or ``celery``: the option, else settings, else the configured default."""
        chosen = self.runtime or self.settings.get("runtime") or get_config().default_runtime
        return str(chosen)

    def module_names(self) -> str | None:
        """``--module``, else the settings' ``module``/``modules`` (comma-joined)."""
        if self.module:
            return self.module
        mods = self.settings.get("modules") or self.settings.get("module")
        if isinstance(mods, list):
            return ",".join(str(m) for m in mods)
        return str(mods) if mods else None

    def discover(self) -> None:
        """Import the user's workflow modules (``--module``, env, settings, YAML)."""
        from pyworkflow.discovery import discover_workflows

        modules = self.module_names()
        for name in (modules or "").split(",") if modules else [None]:
            discover_workflows(module_path=name.strip() if name else None)

    def configure_engine(self) -> StorageBackend:
        """Point the library at the chosen storage and runtime; CLI runs are durable."""
        storage = self.storage()
        configure(storage=storage, default_runtime=self.runtime_name(), default_durable=True)
        return storage

    def run(self, action: Callable[[StorageBackend], Awaitable[T]]) -> T:
        """Connect the storage, ``await action(storage)``, disconnect; in a fresh loop."""

        async def go() -> T:
            storage = self.storage()
            await storage.connect()
            try:
                return await action(storage)
            finally:
                await storage.disconnect()

        return asyncio.run(go())


def fail(message: str) -> click.ClickException:
    """The error to raise for a one-line message and exit code 1.

    Example:
        >>> fail("Run not found: x").exit_code
        1
    """
    return click.ClickException(message)
