"""Cancellation on every backend: refused requests, a run stopped between steps, waiting
runs woken to compensate, cooperative steps, ``wait=True``."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest

from pyworkflow import (
    CancellationError,
    RunStatus,
    WorkflowNotFoundError,
    cancel_workflow,
    get_workflow_result,
    hook,
    resume_hook,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.context import get_context
from pyworkflow.core.exceptions import HookDisposedError
from pyworkflow.engine import cancellation
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import HookStatus
from tests.support import eventually


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def status_of(store: StorageBackend, run_id: str) -> RunStatus:
    run = await store.get_run(run_id)
    assert run is not None
    return run.status


async def assert_cancelled(
    store: StorageBackend, run_id: str, *, cleanup: bool = True, reason: str | None = None
) -> None:
    """CANCELLED, one terminal event saying whether cleanup ran, no timers, no flag."""
    assert await status_of(store, run_id) is RunStatus.CANCELLED
    events = await store.get_events(run_id)
    (cancelled,) = [e for e in events if e.type.value == "workflow.cancelled"]
    assert cancelled.data["cleanup_completed"] is cleanup
    assert cancelled.data["reason"] == reason
    assert kinds(events)[-1] == "workflow.cancelled"
    requested = [e for e in events if e.type.value == "cancellation.requested"]
    assert requested and requested[0].data["requested_by"] == "cancel_workflow"
    assert requested[0].data["reason"] == reason and requested[0].data["requested_at"]
    assert await store.list_timers(run_id) == []
    assert await store.check_cancellation_flag(run_id) is False
    with pytest.raises(CancellationError):
        await get_workflow_result(run_id, storage=store)


async def test_unknown_run_raises(store: StorageBackend) -> None:
    with pytest.raises(WorkflowNotFoundError, match="run_nope"):
        await cancel_workflow("run_nope", storage=store)


async def test_ended_runs_are_refused_and_nothing_is_recorded(store: StorageBackend) -> None:
    @workflow(name="cx_done")
    async def done() -> int:
        return 1

    @workflow(name="cx_broken")
    async def broken() -> None:
        raise ValueError("broken")

    completed = await start(done, durable=True, storage=store)
    with pytest.raises(ValueError):
        await start(broken, durable=True, storage=store)
    failed = next(r.run_id for r in (await store.list_runs())[0] if r.run_id != completed)
    for run_id in (completed, failed):
        before = kinds(await store.get_events(run_id))
        assert await cancel_workflow(run_id, reason="too late", storage=store) is False
        assert kinds(await store.get_events(run_id)) == before
        assert await store.check_cancellation_flag(run_id) is False
    assert await status_of(store, completed) is RunStatus.COMPLETED
    assert await status_of(store, failed) is RunStatus.FAILED


async def test_running_loop_stops_before_its_next_step(store: StorageBackend) -> None:
    started: list[int] = []
    finished: list[int] = []
    cleanups = collections.Counter[str]()

    @step
    async def work(i: int) -> int:
        started.append(i)
        await asyncio.sleep(0.02 + (i % 4) * 0.01)
        finished.append(i)
        return i

    @step
    async def cleanup() -> str:
        cleanups["cleanup"] += 1
        await asyncio.sleep(0.01)
        return "cleaned"

    @workflow(name="cx_loop")
    async def loop() -> int:
        try:
            for i in range(20):
                await work(i)
        except CancellationError:
            async with shield():
                await cleanup()
            raise
        return 20

    task = asyncio.create_task(start(loop, durable=True, storage=store))
    await eventually(lambda: len(started) >= 5, timeout=10)
    ((run,), _) = await store.list_runs()
    running = started[-1]
    assert await cancel_workflow(run.run_id, reason="user", storage=store) is True
    assert await task == run.run_id  # a cancelled local run: start returns, no raise

    # At most the step running when the request landed (or the one it was about to
    # start while the request was being written) ran on; every started step finished.
    assert max(started) <= running + 1 and started == finished == sorted(started)
    assert len(started) < 20
    events = await store.get_events(run.run_id)
    types = kinds(events)
    after_request = types[types.index("cancellation.requested") :]
    work_ids = {e.data["step_id"] for e in events if e.data.get("step_name") == "work"}
    completed_after = [
        e
        for e in events[types.index("cancellation.requested") :]
        if e.type.value == "step.completed" and e.data["step_id"] in work_ids
    ]
    assert len(completed_after) <= 1, after_request
    assert types.count("step.completed") == len(started) + 1  # + the cleanup step
    assert cleanups["cleanup"] == 1
    await assert_cancelled(store, run.run_id, reason="user")


async def test_sleeping_run_is_cancelled_before_cancel_returns(store: StorageBackend) -> None:
    calls = collections.Counter[str]()

    @step
    async def reserve() -> str:
        calls["reserve"] += 1
        return "seat"

    @step
    async def release(seat: str) -> None:
        calls[f"release {seat}"] += 1

    @workflow(name="cx_sleeper")
    async def sleeper() -> str:
        seat = await reserve()
        try:
            await sleep("1h")
        except CancellationError:
            async with shield():
                await release(seat)
            raise
        return "slept"

    run_id = await start(sleeper, durable=True, storage=store)
    assert await status_of(store, run_id) is RunStatus.SUSPENDED
    assert await cancel_workflow(run_id, reason="trip off", storage=store) is True
    await assert_cancelled(store, run_id, reason="trip off")
    assert calls == {"reserve": 1, "release seat": 1}


async def test_run_waiting_on_a_hook_is_cancelled_and_its_hook_disposed(
    store: StorageBackend,
) -> None:
    tokens: list[str] = []
    compensated = collections.Counter[str]()

    async def keep(token: str) -> None:
        tokens.append(token)

    @step
    async def notify_cancelled() -> None:
        compensated["notify"] += 1

    @workflow(name="cx_hook_waiter")
    async def waiter() -> Any:
        try:
            return await hook("approval", timeout="1d", on_created=keep)
        except CancellationError:
            async with shield():
                await notify_cancelled()
            raise

    run_id = await start(waiter, durable=True, storage=store)
    assert await cancel_workflow(run_id, storage=store) is True
    await assert_cancelled(store, run_id)
    assert compensated["notify"] == 1
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.status is HookStatus.DISPOSED
    with pytest.raises(HookDisposedError):
        await resume_hook(tokens[0], {"approved": True}, storage=store)


async def test_caught_cancellation_lets_the_workflow_complete(store: StorageBackend) -> None:
    @step
    async def refund() -> str:
        return "refunded"

    @workflow(name="cx_caught")
    async def caught() -> str:
        try:
            await sleep("1h")
        except CancellationError as error:
            async with shield():
                return f"{await refund()} ({error.reason})"
        return "slept"

    run_id = await start(caught, durable=True, storage=store)
    assert await cancel_workflow(run_id, reason="changed mind", storage=store) is True
    assert await status_of(store, run_id) is RunStatus.COMPLETED
    assert await get_workflow_result(run_id, storage=store) == "refunded (changed mind)"
    assert "workflow.cancelled" not in kinds(await store.get_events(run_id))


async def test_step_polling_cancellation_stops_within_the_poll_interval(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cancellation, "POLL_SECONDS", 0.05)
    ticks: list[int] = []
    cleaned: list[int] = []

    @step
    async def crunch() -> str:
        for i in range(2000):
            get_context().check_cancellation()
            ticks.append(i)
            await asyncio.sleep(0.005)
        return "crunched"

    @step
    async def cleanup() -> None:
        get_context().check_cancellation()  # shielded: does not raise
        cleaned.append(1)

    @workflow(name="cx_cooperative")
    async def cooperative() -> str:
        try:
            return await crunch()
        except CancellationError:
            async with shield():
                await cleanup()
            raise

    task = asyncio.create_task(start(cooperative, durable=True, storage=store))
    await eventually(lambda: len(ticks) >= 3, timeout=10)
    ((run,), _) = await store.list_runs()
    t0 = time.monotonic()
    assert await cancel_workflow(run.run_id, storage=store) is True
    await task
    # Poll every PYWORKFLOW_CANCEL_POLL_SECONDS (patched small here): generous for slow CI.
    assert time.monotonic() - t0 < 3.0
    assert len(ticks) < 2000
    stopped_at = len(ticks)
    await assert_cancelled(store, run.run_id)
    assert len(ticks) == stopped_at and cleaned == [1]
    completed = await store.get_events(run.run_id, ["step.completed"])
    assert [e.data["step_name"] for e in completed] == ["cleanup"]  # crunch never did


async def test_wait_true_returns_once_the_run_has_ended(store: StorageBackend) -> None:
    entered = asyncio.Event()
    after = collections.Counter[str]()

    @step
    async def slow() -> None:
        entered.set()
        await asyncio.sleep(0.2)

    @step
    async def next_one() -> None:
        after["next"] += 1

    @workflow(name="cx_wait")
    async def waited() -> None:
        await slow()
        await next_one()

    task = asyncio.create_task(start(waited, durable=True, storage=store))
    await entered.wait()
    ((run,), _) = await store.list_runs()
    assert await cancel_workflow(run.run_id, wait=True, timeout=10, storage=store) is True
    assert await status_of(store, run.run_id) is RunStatus.CANCELLED
    await task
    assert after["next"] == 0
    await assert_cancelled(store, run.run_id)


async def test_wait_true_times_out_while_a_step_never_checks(store: StorageBackend) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    after = collections.Counter[str]()

    @step
    async def stuck() -> None:
        entered.set()
        await release.wait()

    @step
    async def next_one() -> None:
        after["next"] += 1

    @workflow(name="cx_stuck")
    async def stuck_flow() -> None:
        await stuck()
        await next_one()

    task = asyncio.create_task(start(stuck_flow, durable=True, storage=store))
    await entered.wait()
    ((run,), _) = await store.list_runs()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=run.run_id):
        await cancel_workflow(run.run_id, wait=True, timeout=0.3, storage=store)
    assert time.monotonic() - t0 < 3
    assert await status_of(store, run.run_id) is RunStatus.RUNNING
    assert await store.check_cancellation_flag(run.run_id) is True
    release.set()
    await task
    assert after["next"] == 0
    await assert_cancelled(store, run.run_id)
