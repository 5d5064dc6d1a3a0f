"""The Celery runtime on PostgreSQL: workers, Beat and the test process share a database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyworkflow import start
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun
from tests.celery import flows
from tests.celery.conftest import STEP_WORKER, WORKFLOW_WORKER, Cluster
from tests.servers import RedisServer
from tests.support import eventually, postgres_env

assert celery_runtime.CeleryRuntime

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def pg_cluster(redis_server: RedisServer, pg_dsn: str, tmp_path: Path) -> Iterator[Cluster]:
    redis_server.ensure_running()
    group = Cluster(
        tmp_path, redis_server.fresh_url(), redis_server.fresh_url(), postgres_env(pg_dsn)
    )
    try:
        group.worker("wf", WORKFLOW_WORKER, "--pool=solo")
        group.worker("steps", STEP_WORKER, "--pool=solo")
        group.beat("beat")
        yield group
    finally:
        group.close()


async def test_steps_and_a_sleep_complete_on_postgres(
    pg_cluster: Cluster, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYWORKFLOW_CELERY_BROKER", pg_cluster.broker)
    monkeypatch.setenv("PYWORKFLOW_TEST_DIR", str(pg_cluster.workdir))
    storage = PostgresStorageBackend(dsn=pg_dsn)
    tags = [uuid.uuid4().hex[:8] for _ in range(2)]
    began = time.monotonic()
    run_ids = [
        await start(flows.five_steps, tags[0], runtime="celery", durable=True, storage=storage),
        await start(flows.sleeper, tags[1], "1s", runtime="celery", durable=True, storage=storage),
    ]

    async def finished(run_id: str) -> WorkflowRun | None:
        run = await storage.get_run(run_id)
        return run if run is not None and run.status in TERMINAL_STATUSES else None

    runs = [await eventually(lambda r=r: finished(r), timeout=30) for r in run_ids]
    print(f"\npostgres: 5-step run and 1s-sleep run done in {time.monotonic() - began:.2f}s")
    assert [r.status for r in runs] == [RunStatus.COMPLETED] * 2
    assert [r.result for r in runs] == ["5", "42"]
    assert len(flows.runs_of("add_one", tags[0])) == 5
    assert len(await storage.get_events(run_ids[0], ["step.completed"])) == 5
    assert len(await storage.get_events(run_ids[1], ["sleep.completed"])) == 1
    await storage.disconnect()
