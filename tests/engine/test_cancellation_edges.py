"""Cancellation edge cases on every backend: deterministic replay of compensation,
retry delays, runs whose code is not loaded, repeated requests, and a request racing
the run's own suspension."""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime, timedelta
from typing import Any

from pyworkflow import (
    CancellationError,
    RunStatus,
    cancel_workflow,
    hook,
    resume,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.context import get_context
from pyworkflow.core.registry import _registry
from pyworkflow.engine import events as ev
from pyworkflow.runtime.local import LocalRuntime
from pyworkflow.scheduler.timers import TimerService
from pyworkflow.storage.base import CommitBatch, StorageBackend
from pyworkflow.storage.schemas import HookStatus, Timer
from tests.support import eventually


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def status_of(store: StorageBackend, run_id: str) -> RunStatus:
    run = await store.get_run(run_id)
    assert run is not None
    return run.status


async def is_cancelled(store: StorageBackend, run_id: str) -> bool:
    return await status_of(store, run_id) is RunStatus.CANCELLED


async def test_compensation_that_waits_replays_identically(store: StorageBackend) -> None:
    calls = collections.Counter[str]()

    @step
    async def book() -> str:
        calls["book"] += 1
        return "booking"

    @step
    async def undo(part: str) -> str:
        calls[f"undo {part}"] += 1
        return part

    @workflow(name="cx_compensate_with_sleep")
    async def trip() -> str:
        await book()
        try:
            await sleep("1h")
        except CancellationError:
            calls["except"] += 1
            async with shield():
                await undo("hotel")
                await sleep(0.3)  # a durable wait inside the compensation
                await undo("flight")
            raise
        return "travelled"

    run_id = await start(trip, durable=True, storage=store)
    assert await cancel_workflow(run_id, reason="storm", storage=store) is True
    # The compensation itself waits: the run is not over, the request stays pending.
    assert await status_of(store, run_id) in (RunStatus.SUSPENDED, RunStatus.RUNNING)
    assert calls["undo hotel"] == 1 and calls["undo flight"] == 0
    # Re-activate in the middle of the compensation: it replays, nothing re-runs.
    replays = calls["except"]
    assert await resume(run_id, storage=store) is None
    assert calls["except"] >= replays
    assert (calls["book"], calls["undo hotel"], calls["undo flight"]) == (1, 1, 0)

    await eventually(lambda: is_cancelled(store, run_id), timeout=10)
    assert calls["book"] == 1 and calls["undo hotel"] == 1 and calls["undo flight"] == 1
    events = await store.get_events(run_id)
    types = kinds(events)
    assert types.count("workflow.cancelled") == 1 and types.count("cancellation.requested") == 1
    assert "workflow.failed" not in types  # no nondeterminism on replay
    (cancelled,) = [e for e in events if e.type.value == "workflow.cancelled"]
    assert cancelled.data["cleanup_completed"] is True and cancelled.data["reason"] == "storm"
    assert await store.list_timers(run_id) == []


async def test_step_waiting_for_its_retry_is_cancelled(store: StorageBackend) -> None:
    calls = collections.Counter[str]()

    @step(max_retries=3, retry_delay="1h")
    async def flaky() -> None:
        calls["flaky"] += 1
        raise ConnectionError("down")

    @step
    async def undo() -> None:
        calls["undo"] += 1

    @workflow(name="cx_retry_wait")
    async def retrying() -> None:
        try:
            await flaky()
        except CancellationError:
            async with shield():
                await undo()
            raise

    run_id = await start(retrying, durable=True, storage=store)
    assert await status_of(store, run_id) is RunStatus.SUSPENDED
    assert [t.kind for t in await store.list_timers(run_id)] == ["retry"]
    assert await cancel_workflow(run_id, storage=store) is True
    assert await status_of(store, run_id) is RunStatus.CANCELLED
    assert calls == {"flaky": 1, "undo": 1}
    assert await store.list_timers(run_id) == []
    assert await store.check_cancellation_flag(run_id) is False


async def test_run_whose_workflow_is_not_loaded_is_cancelled_without_cleanup(
    store: StorageBackend,
) -> None:
    compensated = collections.Counter[str]()

    @workflow(name="cx_not_loaded")
    async def elsewhere() -> None:
        try:
            await hook("approval", timeout="1h")
        except CancellationError:
            compensated["except"] += 1
            raise

    run_id = await start(elsewhere, durable=True, storage=store)
    del _registry._workflows["cx_not_loaded"]  # this process no longer has the code
    assert await cancel_workflow(run_id, reason="cleanup", storage=store) is True
    assert await status_of(store, run_id) is RunStatus.CANCELLED
    events = await store.get_events(run_id)
    (cancelled,) = [e for e in events if e.type.value == "workflow.cancelled"]
    assert cancelled.data["cleanup_completed"] is False and cancelled.data["reason"] == "cleanup"
    assert compensated["except"] == 0
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.status is HookStatus.DISPOSED
    assert await store.list_timers(run_id) == []
    assert await store.check_cancellation_flag(run_id) is False


async def test_cancelling_twice(store: StorageBackend) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    calls = collections.Counter[str]()

    @step
    async def busy() -> None:
        entered.set()
        await release.wait()

    @step
    async def undo() -> None:
        calls["undo"] += 1

    @workflow(name="cx_twice")
    async def twice(wait_in_step: bool) -> None:
        try:
            if wait_in_step:
                await busy()
            await sleep("1h")
        except CancellationError:
            async with shield():
                await undo()
            raise

    # A waiting run: the first request ends it, the second is refused.
    sleeping = await start(twice, False, durable=True, storage=store)
    assert await cancel_workflow(sleeping, reason="first", storage=store) is True
    before = kinds(await store.get_events(sleeping))
    assert await cancel_workflow(sleeping, reason="second", storage=store) is False
    assert kinds(await store.get_events(sleeping)) == before
    assert calls["undo"] == 1

    # A running run asked twice before it notices: one ending, one compensation.
    task = asyncio.create_task(start(twice, True, durable=True, storage=store))
    await entered.wait()
    running = next(r.run_id for r in (await store.list_runs())[0] if r.run_id != sleeping)
    assert await cancel_workflow(running, reason="a", storage=store) is True
    assert await cancel_workflow(running, reason="b", storage=store) is True
    release.set()
    await task
    assert await status_of(store, running) is RunStatus.CANCELLED
    types = kinds(await store.get_events(running))
    assert types.count("cancellation.requested") == 2 and types.count("workflow.cancelled") == 1
    assert calls["undo"] == 2
    assert await store.list_timers(running) == []


async def test_request_racing_the_runs_suspension_never_strands_it(
    store: StorageBackend,
) -> None:
    """The request lands while the run commits its suspension (the status it read was
    RUNNING): the run must still end CANCELLED, not sleep on with a pending request."""
    run_ids: list[str] = []
    entered = asyncio.Event()

    @step
    async def prepare() -> None:
        run_ids.append(get_context().run_id)
        entered.set()
        await asyncio.sleep(0.003)

    @workflow(name="cx_race_suspend")
    async def racing() -> None:
        await prepare()
        await sleep("1h")

    async def one(delay: float) -> None:
        entered.clear()
        task = asyncio.create_task(start(racing, durable=True, storage=store))
        await entered.wait()
        await asyncio.sleep(delay)  # from inside the step to past the suspension
        run_id = run_ids[-1]
        await cancel_workflow(run_id, storage=store)
        await task
        try:
            await eventually(lambda: is_cancelled(store, run_id), timeout=3)
        except AssertionError:
            run = await store.get_run(run_id)
            events = kinds(await store.get_events(run_id))
            timers = [(t.kind, t.key) for t in await store.list_timers(run_id)]
            raise AssertionError(
                f"run {run_id} stranded (cancel {delay * 1000:.1f} ms after its step "
                f"began): status {run and run.status.value}, events {events}, timers {timers}"
            ) from None

    for attempt in range(40):
        await one((attempt % 20) * 0.0005)


async def test_cancel_returns_after_the_run_ended_while_timers_are_being_fired(
    store: StorageBackend,
) -> None:
    """The request's wake timer is due at once, so a timer service (this process's, or
    another's) may claim it and start the activation before the inline resume of
    ``cancel_workflow`` does. The local contract still holds: a waiting run is
    CANCELLED, its compensation done, when ``cancel_workflow`` returns."""
    undone = collections.Counter[str]()

    @step
    async def undo(n: int) -> None:
        await asyncio.sleep(0.01)
        undone[n] += 1

    @workflow(name="cx_busy_timers")
    async def waiting(n: int) -> None:
        try:
            await sleep("1h")
        except CancellationError:
            async with shield():
                await undo(n)
            raise

    async def fire(run_id: str) -> None:
        await LocalRuntime().resume_workflow(run_id, store)

    service = TimerService(store, fire, poll_interval=0.001)
    service.start()
    try:
        for n in range(12):
            run_id = await start(waiting, n, durable=True, storage=store)
            assert await cancel_workflow(run_id, storage=store) is True
            run = await store.get_run(run_id)
            assert run is not None and run.status is RunStatus.CANCELLED, (n, run.status)
            assert undone[n] == 1
    finally:
        await service.stop()


async def test_a_task_cancelled_while_committing_leaves_the_storage_usable(
    store: StorageBackend,
) -> None:
    """The engine cancels leftover tasks of an activation (``Activation.drain``), and
    callers wrap calls in ``asyncio.timeout``: a commit interrupted at any await must
    not leave the backend unable to write."""

    @workflow(name="cx_commit_cancelled")
    async def waiting() -> None:
        await sleep("1h")

    run_id = await start(waiting, durable=True, storage=store)
    later = datetime.now(UTC) + timedelta(days=1)
    for k in range(12):
        event = ev.create_cancellation_requested_event(run_id, f"attempt {k}")
        task = asyncio.create_task(store.commit(CommitBatch(run_id=run_id, events=[event])))
        for _ in range(k):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # The next write must work, whatever state the interrupted one was left in.
        await store.commit(
            CommitBatch(run_id=run_id, timers_upsert=[Timer(run_id, "wake", f"k{k}", later)])
        )
    assert await cancel_workflow(run_id, storage=store) is True
    assert await status_of(store, run_id) is RunStatus.CANCELLED
