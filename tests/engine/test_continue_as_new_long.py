"""Continue-as-new under load and under failure: a 10,000-iteration loop kept in
bounded runs (memory and SQLite), and a crash between a run's end and the creation
of its continuation (every backend)."""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import pyworkflow.runtime.driver as driver_mod
from pyworkflow import (
    RunStatus,
    continue_as_new,
    get_workflow_chain,
    get_workflow_result,
    resume,
    start,
    step,
    workflow,
)
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend


class ProcessDied(BaseException):
    """Stands for the process dying at this point: nothing in the engine handles it."""


@pytest.mark.parametrize("crash", [ConnectionError("hiccup"), ProcessDied()])
async def test_crash_between_the_end_and_the_continuation(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch, crash: BaseException
) -> None:
    """The first run's CONTINUED_AS_NEW is committed, then the process fails before
    creating the next run: its follow-up timer (what ``resume`` of the ended run
    does) creates and runs it, once."""
    ran = collections.Counter[int]()
    real = driver_mod.run_followups
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise crash
        return await real(*args, **kwargs)

    monkeypatch.setattr(driver_mod, "run_followups", flaky)

    @step
    async def visit(n: int) -> int:
        ran[n] += 1
        return n

    @workflow(name="can_fragile")
    async def fragile(n: int) -> int:
        await visit(n)
        if n < 2:
            continue_as_new(n + 1)
        return n * 10

    with pytest.raises(type(crash)):
        await start(fragile, 1, durable=True, storage=store)
    ((first,), _) = await store.list_runs(query="can_fragile")
    assert first.status is RunStatus.CONTINUED_AS_NEW
    assert first.continued_to_run_id is not None
    assert await store.get_run(first.continued_to_run_id) is None
    assert [t.kind for t in await store.list_timers(first.run_id)] == ["followup"]

    await resume(first.run_id, storage=store)
    assert await get_workflow_result(first.run_id, storage=store, wait=True, timeout=10) == 20
    chain = await get_workflow_chain(first.run_id, storage=store)
    assert [r.run_id for r in chain] == [first.run_id, first.continued_to_run_id]
    assert ran == {1: 1, 2: 1}
    assert await store.list_timers(first.run_id) == []
    # A second firing of the (already consumed) follow-up changes nothing.
    await resume(first.run_id, storage=store)
    assert len(await get_workflow_chain(first.run_id, storage=store)) == 2


# ------------------------------------------------------------- a long-lived loop


@pytest.fixture(params=["memory", "sqlite"])
async def embedded(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    backend: StorageBackend
    if request.param == "memory":
        backend = InMemoryStorageBackend()
    else:
        backend = SQLiteStorageBackend(str(tmp_path / "loop.db"))
    await backend.connect()
    yield backend
    await backend.disconnect()


RUNS = 100
PER_RUN = 100
BATCH = 10


async def test_ten_thousand_iterations_in_bounded_runs(
    embedded: StorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    """10,000 iterations as 100 runs of 100: each run folds its iterations in ten
    steps of ten, then continues as new with the cursor and the running total."""
    store = embedded
    done = collections.Counter[int]()

    @step
    async def fold(start_at: int, total: int) -> int:
        for i in range(start_at, start_at + BATCH):
            done[i] += 1
            total += i
        return total

    @workflow(name="can_long_loop")
    async def long_loop(cursor: int, total: int) -> dict[str, int]:
        end = cursor + PER_RUN
        while cursor < end:
            total = await fold(cursor, total)
            cursor += BATCH
        if cursor < RUNS * PER_RUN:
            continue_as_new(cursor, total)
        return {"iterations": cursor, "total": total}

    t0 = time.perf_counter()
    first_id = await start(long_loop, 0, 0, durable=True, storage=store)
    elapsed = time.perf_counter() - t0
    n = RUNS * PER_RUN
    assert await get_workflow_result(first_id, storage=store) == {
        "iterations": n,
        "total": n * (n - 1) // 2,
    }
    assert done == {i: 1 for i in range(n)}

    chain = await get_workflow_chain(first_id, storage=store)
    assert len(chain) == RUNS
    assert chain[0].run_id == first_id
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW] * (RUNS - 1) + [
        RunStatus.COMPLETED
    ]
    for before, after in itertools.pairwise(chain):
        assert before.continued_to_run_id == after.run_id
        assert after.continued_from_run_id == before.run_id
    assert [r.run_id for r in await get_workflow_chain(chain[-1].run_id, storage=store)] == [
        r.run_id for r in chain
    ]
    sizes = [len(await store.get_events(r.run_id)) for r in chain]
    assert max(sizes) <= 2 * (PER_RUN // BATCH) + 2  # 22: started, 10 x 2 steps, end
    with capsys.disabled():
        print(
            f"\n[10k loop on {type(store).__name__}] {elapsed:.2f}s for {RUNS} runs, "
            f"{sum(sizes)} events, max {max(sizes)} per run"
        )
    assert elapsed < 20, f"10,000 iterations took {elapsed:.1f}s"
