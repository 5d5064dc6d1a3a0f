"""The examples run on PostgreSQL with nothing but environment variables (issue 3).

``PYWORKFLOW_STORAGE_TYPE=postgres`` plus ``PYWORKFLOW_POSTGRES_*`` and the examples that
take their storage from the configuration store their runs in the real server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.schemas import RunStatus
from tests.support import postgres_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["01_basic_workflow.py", "03_retries.py", "06_idempotency.py"]


@pytest.mark.parametrize("example", EXAMPLES)
async def test_example_runs_on_postgres_from_env(example: str, pg_dsn: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **postgres_env(pg_dsn))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "local" / "durable" / example)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    store = PostgresStorageBackend(dsn=pg_dsn)
    await store.connect()
    runs, _ = await store.list_runs(limit=50)
    await store.disconnect()
    assert runs, "the example's runs should be in PostgreSQL"
    assert all(r.status in (RunStatus.COMPLETED, RunStatus.FAILED) for r in runs)
    assert any(r.status is RunStatus.COMPLETED for r in runs)
