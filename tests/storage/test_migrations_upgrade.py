"""A database written at an older migration level keeps its runs when newer code connects.

The "older release" is this code with its migrations stopped at version 1
(``apply_migrations(..., target=1)``): it writes runs, events and timers, and starts a
durable workflow that suspends on a sleep. The current code then connects, applies the
rest, reads everything back unchanged and finishes the suspended run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pyworkflow import get_workflow_result, resume, sleep, start, step, workflow
from pyworkflow.engine.events import Event, EventType
from pyworkflow.runtime import timer_service
from pyworkflow.storage.base import CommitBatch
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.schemas import RunStatus, Timer, WorkflowRun
from pyworkflow.storage.sql import MIGRATIONS, VERSION_TABLE, SQLStorageBackend
from pyworkflow.storage.sql.migrations import apply_migrations
from pyworkflow.storage.sqlite import SQLiteStorageBackend

OLD_LEVEL = 1
INDEXES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'workflow_runs'",
    "postgres": "SELECT indexname FROM pg_indexes WHERE tablename = 'workflow_runs'",
}
BODY_RUNS: list[str] = []


class OldSQLite(SQLiteStorageBackend):
    """SQLite as a release whose newest migration was ``OLD_LEVEL``."""

    async def _migrate(self) -> list[int]:
        return await apply_migrations(self._dialect, self._transaction, self._reader, OLD_LEVEL)


class OldPostgres(PostgresStorageBackend):
    """PostgreSQL as a release whose newest migration was ``OLD_LEVEL``."""

    async def _migrate(self) -> list[int]:
        return await apply_migrations(self._dialect, self._transaction, self._reader, OLD_LEVEL)


@step(name="upgrade_charge")
async def charge(order: str) -> str:
    BODY_RUNS.append(order)
    return f"charged {order}"


@workflow(name="upgrade_order", durable=True)
async def order_flow(order: str) -> str:
    receipt = await charge(order)
    await sleep(0.2)
    return receipt.upper()


Factory = Callable[[bool], SQLStorageBackend]


@pytest.fixture(params=["sqlite", "postgres"])
def backend_at(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """``backend_at(old)``: a backend on one database, at the old level or the current."""
    if request.param == "sqlite":
        path = str(tmp_path / "wf.db")
        return lambda old: OldSQLite(path) if old else SQLiteStorageBackend(path)
    dsn = request.getfixturevalue("pg_dsn")
    return lambda old: OldPostgres(dsn=dsn) if old else PostgresStorageBackend(dsn=dsn)


@pytest.fixture
async def old_data(backend_at: Factory) -> AsyncIterator[dict[str, object]]:
    """Runs, events, a timer and a suspended workflow, written at the old level."""
    BODY_RUNS.clear()
    old = backend_at(True)
    assert await old.pending_migrations() == [m.version for m in MIGRATIONS]
    await old.connect()
    try:
        data = await _write_old_data(old)
    finally:
        await old.disconnect()
    yield data


async def _write_old_data(old: SQLStorageBackend) -> dict[str, object]:
    t0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    runs = [
        WorkflowRun(
            f"run_{i}",
            "legacy",
            RunStatus.COMPLETED if i % 2 else RunStatus.RUNNING,
            created_at=t0 + timedelta(minutes=i),
            updated_at=t0 + timedelta(minutes=i),
            completed_at=t0 + timedelta(hours=1) if i % 2 else None,
            input_kwargs=f'{{"n": {i}}}',
            idempotency_key=f"key-{i}",
            context={"tenant": "acme", "i": i},
        )
        for i in range(6)
    ]
    for run in runs:
        await old.create_run(run)
        for n in range(3):
            await old.record_event(
                Event(run_id=run.run_id, type=EventType.CONTEXT_UPDATED, data={"n": n})
            )
    suspended = await start(order_flow, "A-1", storage=old)
    assert (await old.get_run(suspended)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    # The old process goes away before the sleep is due: its timer service with it.
    await timer_service(old).stop()
    due = Timer("run_0", "wake", "wake", t0)
    await old.commit(CommitBatch("run_0", timers_upsert=[due]))
    assert await old.pending_migrations() == [m.version for m in MIGRATIONS if m.version > 1]
    return {"runs": runs, "suspended": suspended, "timer": due}


async def test_upgrade_keeps_runs_and_finishes_them(
    backend_at: Factory, old_data: dict[str, object]
) -> None:
    current = backend_at(False)
    await current.connect()
    try:
        assert await current.pending_migrations() == []
        versions = await current._fetch_all(f"SELECT version FROM {VERSION_TABLE}")
        assert sorted(int(r[0]) for r in versions) == [m.version for m in MIGRATIONS]

        indexes = await current._fetch_all(INDEXES[current._dialect.name])
        names = {r[0] for r in indexes}
        assert {"workflow_runs_status_created_ix", "workflow_runs_completed_ix"} <= names
        assert "workflow_runs_status_ix" not in names  # replaced by the wider one

        runs: list[WorkflowRun] = old_data["runs"]  # type: ignore[assignment]
        for run in runs:
            assert await current.get_run(run.run_id) == run
            events = await current.get_events(run.run_id)
            assert [(e.sequence, e.data["n"]) for e in events] == [(0, 0), (1, 1), (2, 2)]
        assert (await current.get_run_by_idempotency_key("key-3")) == runs[3]
        # Served by the index migration 2 created: one status, newest first.
        done, _ = await current.list_runs(status=RunStatus.COMPLETED)
        assert [r.run_id for r in done] == ["run_5", "run_3", "run_1"]
        claimed = await current.claim_due_timers(datetime.now(UTC), "upgrader", 30)
        due: Timer = old_data["timer"]  # type: ignore[assignment]
        assert due.timer_id in {t.timer_id for t in claimed}

        # The run that was suspended on a sleep under the old schema finishes now,
        # without charging again.
        run_id: str = old_data["suspended"]  # type: ignore[assignment]
        await asyncio.sleep(0.2)
        await resume(run_id, storage=current)
        assert await get_workflow_result(run_id, storage=current) == "CHARGED A-1"
        assert BODY_RUNS == ["A-1"]
        await current.record_event(
            Event(run_id="run_0", type=EventType.CONTEXT_UPDATED, data={"n": 3})
        )
        assert [e.sequence for e in await current.get_events("run_0")] == [0, 1, 2, 3]
    finally:
        await current.disconnect()
