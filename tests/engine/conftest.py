"""Fixtures for engine tests: a fresh storage of each embedded kind, an isolated registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pyworkflow.runtime.local import _services
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend


@pytest.fixture(params=["memory", "file", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[StorageBackend]:  # type: ignore[no-untyped-def]
    """A connected, empty backend: memory, file, SQLite and PostgreSQL in turn."""
    kind = request.param
    backend: StorageBackend
    if kind == "memory":
        backend = InMemoryStorageBackend()
    elif kind == "file":
        backend = FileStorageBackend(str(tmp_path / "files"))
    elif kind == "postgres":
        # Asked for here, not in the signature: the other kinds need no server.
        from pyworkflow.storage.postgres import PostgresStorageBackend

        backend = PostgresStorageBackend(dsn=request.getfixturevalue("pg_dsn"))
    else:
        backend = SQLiteStorageBackend(str(tmp_path / "wf.db"))
    await backend.connect()
    yield backend
    for service in _services.get(asyncio.get_running_loop(), {}).values():
        await service.stop()
    await backend.disconnect()
