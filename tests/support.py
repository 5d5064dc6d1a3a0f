"""Helpers for tests: polling instead of fixed sleeps (DESIGN.md §4), free ports, and
killing a process tree for crash tests.

Import them as ``from tests.support import eventually, wait_until, free_port, kill_tree``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import unquote, urlsplit

T = TypeVar("T")


def _failure(message: str, timeout: float, last: object) -> AssertionError:
    return AssertionError(f"{message} (not true after {timeout}s; last value: {last!r})")


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...
@overload
async def eventually(
    predicate: Callable[[], T],
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...
async def eventually(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition never became true",
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy; return that.

    Exceptions raised by the predicate propagate at once: a broken check should not look
    like a slow one. On timeout, raises ``AssertionError`` with ``message`` and the last
    value seen.

    Example::

        run = await eventually(
            lambda: storage.get_run(run_id),              # an async call is awaited
            message="run was never recorded",
        )
        await eventually(lambda: counter.value == 3, timeout=5)
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _failure(message, timeout, value)
        await asyncio.sleep(min(interval, remaining))


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition never became true",
) -> T:
    """Blocking twin of :func:`eventually` for sync predicates (e.g. in sync tests).

    Example::

        pid = wait_until(lambda: read_pid_file(path), message="worker never wrote its pid")
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):  # a coroutine is truthy: it would "pass" at once
            if inspect.iscoroutine(value):
                value.close()
            raise TypeError("wait_until() got an async predicate; use `await eventually(...)`")
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _failure(message, timeout, value)
        time.sleep(min(interval, remaining))


def postgres_env(dsn: str) -> dict[str, str]:
    """``PYWORKFLOW_STORAGE_TYPE`` and ``PYWORKFLOW_POSTGRES_*`` for a DSN: how a child
    process (a worker, Beat, an example) is told to use that PostgreSQL database.

    Example:
        >>> postgres_env("postgresql://u:p%40ss@127.0.0.1:5433/db")["PYWORKFLOW_POSTGRES_PASSWORD"]
        'p@ss'
    """
    url = urlsplit(dsn)
    return {
        "PYWORKFLOW_STORAGE_TYPE": "postgres",
        "PYWORKFLOW_POSTGRES_HOST": url.hostname or "localhost",
        "PYWORKFLOW_POSTGRES_PORT": str(url.port or 5432),
        "PYWORKFLOW_POSTGRES_USER": unquote(url.username or ""),
        "PYWORKFLOW_POSTGRES_PASSWORD": unquote(url.password or ""),
        "PYWORKFLOW_POSTGRES_DATABASE": url.path.lstrip("/"),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).

    Example::

        port = free_port()
        server = subprocess.Popen(["redis-server", "--port", str(port)])
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return int(fields[1]), fields[0]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, not yet reaped by its parent) counts as dead.

    Example: ``wait_until(lambda: not process_alive(worker_pid))``
    """
    info = _ppid_and_state(pid)
    return info is not None and info[1] not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid`` (children, grandchildren, ...), from /proc.

    Example: ``assert descendants(worker.pid) == []``
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _ppid_and_state(int(entry))) is not None:
            children.setdefault(info[0], []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def kill_tree(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL ``pid`` and all its descendants, then wait (up to ``timeout``) until all are
    gone: a crash, with no chance to clean up. Killing the process group is not enough for
    servers whose children call setsid(), as PostgreSQL backends do.

    Example::

        kill_tree(worker.pid)   # e.g. a Celery worker in the middle of a step
    """
    victims = [pid, *descendants(pid)]
    for victim in victims:  # the parent first, so that it cannot fork replacements
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(process_alive(v) for v in victims) and time.monotonic() < deadline:
        time.sleep(0.01)
