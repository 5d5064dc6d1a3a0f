"""The checks ``pyworkflow setup`` runs on the config it wrote.

The storage must build and connect, ``--module`` must import, and for the celery
runtime the broker should answer (only a warning: it may be started later).

Example:
    >>> check_broker("memory://").line()
    '✓ broker: memory:// needs no server'
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyworkflow.config import read_yaml_config
from pyworkflow.core.registry import list_workflows
from pyworkflow.discovery import discover_workflows
from pyworkflow.storage.config import config_to_storage

_STORAGE_TIMEOUT = 10.0
_BROKER_TIMEOUT = 2.0
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671, "pyamqp": 5672}


@dataclass
class Check:
    """One validation result of ``setup``; ``warning`` results do not fail the command.

    Example:
        >>> Check("storage", True, "sqlite connected").line()
        '✓ storage: sqlite connected'
    """

    name: str
    ok: bool
    detail: str
    warning: bool = False

    def line(self) -> str:
        """The ``✓``/``✗``/``!`` line printed for people."""
        mark = "✓" if self.ok else ("!" if self.warning else "✗")
        return f"{mark} {self.name}: {self.detail}"

    def as_json(self) -> dict[str, Any]:
        """The documented ``{name, ok, detail}`` item."""
        return {k: v for k, v in asdict(self).items() if k != "warning"}


def validate(config_path: Path, module: str | None) -> list[Check]:
    """Check the config at ``config_path``: it reads back, its storage connects, ``module``
    imports and, for the celery runtime, its broker answers.

    Example (not run: it connects to the configured storage)::

        [c.line() for c in validate(Path("pyworkflow.config.yaml"), "app.flows")]
    """
    try:
        data = read_yaml_config(config_path)
    except (ValueError, ImportError) as error:
        return [Check("config", False, str(error))]
    checks = [Check("config", True, f"{config_path} reads back")]
    checks.append(_check_storage(data.get("storage")))
    if module:
        checks.append(_check_module(module))
    celery = data.get("celery")
    if data.get("runtime") == "celery" and isinstance(celery, dict):
        checks.append(check_broker(str(celery.get("broker"))))
    return checks


def _check_storage(options: Any) -> Check:
    try:
        storage = config_to_storage(options)
    except ValueError as error:
        return Check("storage", False, str(error))
    kind = options.get("type", "sqlite") if isinstance(options, dict) else "sqlite"

    async def connect() -> None:
        await asyncio.wait_for(storage.connect(), _STORAGE_TIMEOUT)
        await storage.disconnect()

    try:
        asyncio.run(connect())
    except Exception as error:
        detail = str(error) or type(error).__name__
        return Check("storage", False, f"{kind} did not connect: {detail}")
    if kind == "memory":
        return Check("storage", True, "memory connected (runs vanish when each command ends)")
    where = options.get("base_path") or options.get("dsn") or ""
    return Check("storage", True, f"{kind} connected {where}".rstrip())


def _check_module(module: str) -> Check:

    before = set(list_workflows())
    try:
        discover_workflows(module_path=module)
    except Exception as error:
        return Check("module", False, str(error) or type(error).__name__)
    added = sorted(set(list_workflows()) - before)
    found = ", ".join(added) if added else "no new workflows"
    return Check("module", True, f"{module} imported ({found})")


def check_broker(url: str, timeout: float = _BROKER_TIMEOUT) -> Check:
    """Whether the broker at ``url`` answers within ``timeout`` s; a warning if not.

    Redis is pinged when the redis client is installed; other brokers get a TCP connect.

    Example:
        >>> check_broker("memory://").ok
        True
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("memory", "filesystem"):
        return Check("broker", True, f"{url} needs no server")
    try:
        if scheme in ("redis", "rediss") and importlib.util.find_spec("redis"):
            # A ping, not just a connect: it also catches a wrong password or db.
            import redis

            with redis.Redis.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            ) as client:
                client.ping()
        else:
            port = parts.port or _DEFAULT_PORTS.get(scheme)
            if not parts.hostname or port is None:
                return Check("broker", False, f"cannot tell host and port of {url}", warning=True)
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except Exception as error:
        detail = f"{url} did not answer ({error or type(error).__name__}); start it before a worker"
        return Check("broker", False, detail, warning=True)
    return Check("broker", True, f"{url} answered")
