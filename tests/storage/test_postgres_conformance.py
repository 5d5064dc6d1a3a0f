"""The shared storage contract on a real PostgreSQL (a fresh database per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.testing import StorageConformance


class TestPostgresConformance(StorageConformance):
    """Every conformance test against the PostgreSQL the test harness started."""

    @pytest.fixture
    async def storage(self, pg_dsn: str) -> AsyncIterator[PostgresStorageBackend]:
        backend = PostgresStorageBackend(dsn=pg_dsn)
        await backend.connect()
        yield backend
        await backend.disconnect()
