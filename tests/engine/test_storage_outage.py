"""A storage outage mid-run interrupts the activation; it never fails the run.

The backend is a real SQLite file whose ``commit`` is made to raise once, the way a
dropped database connection would. Nothing about the workflow failed, so nothing may
be recorded as a failure: the caller sees the storage error, the run stays resumable,
and the step whose completion was lost runs again when the run is resumed.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from pyworkflow import RunStatus, get_workflow_result, resume, start, step, workflow
from pyworkflow.runtime import timer_service
from pyworkflow.storage.base import CommitBatch
from pyworkflow.storage.sqlite import SQLiteStorageBackend


class OutageSQLite(SQLiteStorageBackend):
    """SQLite that fails the commit recording ``fail_step``'s completion, once."""

    fail_step: str | None = None

    async def commit(self, batch: CommitBatch) -> None:
        names = [e.data.get("step_name") for e in batch.events if e.type.value == "step.completed"]
        if self.fail_step is not None and self.fail_step in names:
            self.fail_step = None
            raise ConnectionError("connection to the database was lost")
        await super().commit(batch)


async def test_outage_interrupts_and_resume_finishes(tmp_path: Path) -> None:
    ran: collections.Counter[str] = collections.Counter()

    @step
    async def part(name: str) -> str:
        ran[name] += 1
        return name

    @workflow(name="outage_wf")
    async def outage_wf() -> list[str]:
        try:
            return [await part("one"), await part("two"), await part("three")]
        except Exception:  # user code must not see (or swallow) the outage
            return ["swallowed"]

    store = OutageSQLite(str(tmp_path / "outage.db"))
    await store.connect()
    store.fail_step = "part"
    ran.clear()
    with pytest.raises(ConnectionError, match="connection to the database was lost"):
        await start(outage_wf, durable=True, storage=store)
    (run,), _ = await store.list_runs()
    assert run.status is RunStatus.RUNNING
    assert await store.get_events(run.run_id, ["workflow.failed"]) == []
    assert await store.get_run_lease(run.run_id) is None  # released: resumable at once
    assert await resume(run.run_id, storage=store) == ["one", "two", "three"]
    # "one"'s completion was the commit that failed, so its body ran twice.
    assert ran == {"one": 2, "two": 1, "three": 1}
    await store.disconnect()


async def test_interrupted_run_is_recovered_as_stale(tmp_path: Path) -> None:
    @step
    async def only() -> int:
        return 7

    @workflow(name="stale_wf")
    async def stale_wf() -> int:
        return await only()

    store = OutageSQLite(str(tmp_path / "stale.db"))
    await store.connect()
    store.fail_step = "only"
    with pytest.raises(ConnectionError):
        await start(stale_wf, durable=True, storage=store)
    (run,), _ = await store.list_runs()
    # The timer service also looks for RUNNING runs nobody holds, and resumes them.
    service = timer_service(store)
    assert await get_workflow_result(run.run_id, storage=store, wait=True, timeout=10) == 7
    await service.stop()
    await store.disconnect()
