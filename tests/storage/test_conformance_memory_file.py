"""The shared storage conformance suite on the in-memory and file backends, plus the
in-memory extras (thread safety, copies, ``clear``/``len``/``repr``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.base import CommitBatch
from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import RunStatus, Timer, WorkflowRun
from pyworkflow.testing import StorageConformance


class TestMemoryConformance(StorageConformance):
    """The storage contract on :class:`InMemoryStorageBackend`."""

    @pytest.fixture
    async def storage(self) -> AsyncIterator[InMemoryStorageBackend]:
        backend = InMemoryStorageBackend()
        await backend.connect()
        yield backend
        await backend.disconnect()


class TestFileConformance(StorageConformance):
    """The storage contract on :class:`FileStorageBackend` in a fresh folder."""

    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[FileStorageBackend]:
        backend = FileStorageBackend(str(tmp_path / "data"))
        await backend.connect()
        yield backend
        await backend.disconnect()


async def test_memory_extras() -> None:
    store = InMemoryStorageBackend()
    assert len(store) == 0
    await store.create_run(WorkflowRun("run_1", "wf", RunStatus.PENDING))
    await store.record_event(Event(run_id="run_1"))
    assert len(store) == 1
    assert repr(store) == "InMemoryStorageBackend(runs=1, events=1, schedules=0)"
    store.clear()
    assert len(store) == 0 and await store.get_events("run_1") == []


async def test_memory_stores_copies() -> None:
    store = InMemoryStorageBackend()
    run = WorkflowRun("run_1", "wf", RunStatus.PENDING, context={"a": [1]})
    await store.create_run(run)
    run.context["a"].append(2)
    run.status = RunStatus.FAILED
    fetched = await store.get_run("run_1")
    assert fetched is not None and fetched.context == {"a": [1]}
    fetched.context["a"].append(3)
    event = Event(run_id="run_1", type=EventType.STEP_STARTED, data={"x": [1]})
    await store.record_event(event)
    event.data["x"].append(2)
    [stored] = await store.get_events("run_1")
    stored.data["x"].append(3)
    again = await store.get_run("run_1")
    assert again is not None and again.context == {"a": [1]} and again.status is RunStatus.PENDING
    assert (await store.get_events("run_1"))[0].data == {"x": [1]}


def test_memory_threads_never_double_claim() -> None:
    store = InMemoryStorageBackend()
    now = datetime.now(UTC)
    timers = [Timer(run_id="r", kind="sleep", key=f"t{i}", fire_at=now) for i in range(200)]
    asyncio.run(store.commit(CommitBatch("r", timers_upsert=timers)))
    results: list[list[str]] = [[] for _ in range(8)]

    def claim(slot: int) -> None:
        async def loop() -> None:
            while batch := await store.claim_due_timers(now, f"t{slot}", 60, limit=2):
                results[slot].extend(t.timer_id for t in batch)

        asyncio.run(loop())

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [timer_id for got in results for timer_id in got]
    assert sorted(flat) == sorted(t.timer_id for t in timers)


def test_memory_threads_record_events_gap_free() -> None:
    store = InMemoryStorageBackend()

    def append(n: int) -> None:
        for _ in range(n):
            asyncio.run(store.record_event(Event(run_id="r", type=EventType.STEP_STARTED)))

    threads = [threading.Thread(target=append, args=(25,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = asyncio.run(store.get_events("r"))
    assert [e.sequence for e in events] == list(range(100))
