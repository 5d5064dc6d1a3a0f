"""The per-process event-log cache: a resume reads only new events, and never a stale log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pyworkflow import get_workflow_result, resume, sleep, start, step, workflow
from pyworkflow.engine.events import Event, EventType
from pyworkflow.runtime.event_cache import EVENT_LOGS, EventLogCache
from pyworkflow.storage.base import CommitBatch, StorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend


class CountingReads:
    """Counts the events a storage hands out (wraps the real backend's methods)."""

    def __init__(self, storage: StorageBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full_reads = 0
        self.events_read = 0
        get_events, get_after = storage.get_events, storage.get_events_after

        async def counted_all(run_id: str, *args: Any, **kwargs: Any) -> list[Event]:
            found = await get_events(run_id, *args, **kwargs)
            self.full_reads += 1
            self.events_read += len(found)
            return found

        async def counted_after(run_id: str, after: int) -> list[Event]:
            found = await get_after(run_id, after)
            self.events_read += len(found)
            return found

        monkeypatch.setattr(storage, "get_events", counted_all)
        monkeypatch.setattr(storage, "get_events_after", counted_after)


def _long_loop() -> Any:
    @step(name="cache_inc")
    async def inc(x: int) -> int:
        return x + 1

    @workflow(name="cache_loop")
    async def loop(n: int) -> int:
        x = 0
        for i in range(n):
            x = await inc(x)
            if i % 40 == 39:
                await sleep(0.001)
        return x

    return loop


async def test_resumes_read_only_new_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite: its get_events_after is its own query (the memory and file backends build
    # it on get_events, which would count as full reads here).
    store = SQLiteStorageBackend(str(tmp_path / "cache.db"))
    await store.connect()
    loop = _long_loop()
    run_id = await start(loop, 200, durable=True, storage=store)
    reads = CountingReads(store, monkeypatch)
    while (await store.get_run(run_id)).status.value != "completed":  # type: ignore[union-attr]
        await resume(run_id, storage=store)
    assert await get_workflow_result(run_id, storage=store) == 200
    total = len(await store.get_events(run_id))
    # Without the cache every resume re-reads the whole log: ~5 x 400 events here.
    assert reads.events_read < 2 * total
    await store.disconnect()


async def test_events_appended_elsewhere_are_folded_in(store: StorageBackend) -> None:
    """Another writer's events (here: a cancellation request) reach the cached log."""
    loop = _long_loop()
    run_id = await start(loop, 120, durable=True, storage=store)
    cached = await EVENT_LOGS.load(store, run_id)
    EVENT_LOGS.keep(store, run_id, cached)
    marker = Event(run_id=run_id, type=EventType.CONTEXT_UPDATED, data={"context": {"by": "x"}})
    await store.commit(CommitBatch(run_id=run_id, events=[marker]))
    loaded = await EVENT_LOGS.load(store, run_id)
    assert [e.event_id for e in loaded] == [e.event_id for e in await store.get_events(run_id)]


async def test_a_rewritten_log_is_read_again(store: StorageBackend) -> None:
    """A cached prefix whose last event is no longer the run's is dropped, not trusted."""
    cache = EventLogCache(min_events=1)
    first = [Event(run_id="r", type=EventType.CONTEXT_UPDATED, data={"i": i}) for i in range(3)]
    await store.commit(CommitBatch(run_id="r", events=first))
    cache.keep(store, "r", await store.get_events("r"))
    forged = [Event(run_id="r", type=EventType.CONTEXT_UPDATED, data={"forged": True}, sequence=2)]
    cache.keep(store, "r", [*(await store.get_events("r"))[:2], *forged])
    loaded = await cache.load(store, "r")
    assert [e.data for e in loaded] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_short_logs_and_the_bound() -> None:
    from pyworkflow.storage.memory import InMemoryStorageBackend

    store = InMemoryStorageBackend()
    cache = EventLogCache(min_events=3, max_events=5)

    def log(run_id: str, n: int) -> list[Event]:
        return [
            Event(run_id=run_id, type=EventType.CONTEXT_UPDATED, data={}, sequence=i)
            for i in range(n)
        ]

    cache.keep(store, "short", log("short", 2))
    assert cache.size == 0  # too short to be worth the memory
    cache.keep(store, "a", log("a", 3))
    cache.keep(store, "b", log("b", 3))
    assert cache.size == 3  # "a" evicted: at most 5 events held
