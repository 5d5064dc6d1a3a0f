"""The durable core on every embedded backend: record, replay, retry, sleep."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime

import pytest

from pyworkflow import (
    FatalError,
    RetryableError,
    RunStatus,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage.base import StorageBackend
from tests.support import eventually


def types(events) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.type.value for e in events]


async def test_steps_are_recorded_and_result_returned(store: StorageBackend) -> None:
    @step
    async def add(a: int, b: int) -> int:
        return a + b

    @workflow(name="adder")
    async def adder(a: int, b: int) -> int:
        x = await add(a, b)
        return await add(x, 10)

    run_id = await start(adder, 1, b=2, durable=True, storage=store)
    run = await get_workflow_run(run_id, storage=store)
    assert run is not None and run.status is RunStatus.COMPLETED
    assert run.workflow_name == "adder"
    assert await get_workflow_result(run_id, storage=store) == 13
    events = await get_workflow_events(run_id, storage=store)
    assert types(events) == [
        "workflow.started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    assert [e.sequence for e in events] == list(range(6))
    assert (await store.list_timers(run_id)) == []


async def test_resume_replays_without_rerunning_steps(store: StorageBackend) -> None:
    calls: list[str] = []

    @step
    async def record(name: str) -> str:
        calls.append(name)
        return name.upper()

    @workflow(name="replayer")
    async def replayer() -> list[str]:
        a = await record("a")
        await sleep(0.2)
        b = await record("b")
        return [a, b]

    run_id = await start(replayer, durable=True, storage=store)
    assert (await get_workflow_run(run_id, storage=store)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    assert calls == ["a"]
    await eventually(lambda: get_run_status(store, run_id, RunStatus.COMPLETED), timeout=5)
    assert calls == ["a", "b"]
    assert await get_workflow_result(run_id, storage=store) == ["A", "B"]
    assert "sleep.completed" in types(await get_workflow_events(run_id, storage=store))


async def get_run_status(store: StorageBackend, run_id: str, status: RunStatus) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status is status


async def test_sleep_is_never_early_and_resume_completes_it(store: StorageBackend) -> None:
    @workflow(name="sleeper")
    async def sleeper() -> str:
        await sleep(0.3)
        return "woke"

    t0 = time.monotonic()
    run_id = await start(sleeper, durable=True, storage=store)
    # An explicit resume before the time changes nothing.
    assert await resume(run_id, storage=store) is None
    timers = await store.list_timers(run_id)
    assert [t.kind for t in timers] == ["sleep"]
    result = await get_workflow_result(run_id, storage=store, wait=True, timeout=5)
    assert result == "woke"
    assert time.monotonic() - t0 >= 0.3
    events = await get_workflow_events(run_id, storage=store)
    assert types(events).count("sleep.started") == 1
    assert types(events).count("sleep.completed") == 1
    assert await store.list_timers(run_id) == []


async def test_retry_waits_durably_then_succeeds(store: StorageBackend) -> None:
    attempts: list[float] = []

    @step(max_retries=3, retry_delay=0.2)
    async def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("not yet")
        return "ok"

    @workflow(name="retrier")
    async def retrier() -> str:
        return await flaky()

    run_id = await start(retrier, durable=True, storage=store)
    assert (await store.get_run(run_id)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    assert await get_workflow_result(run_id, storage=store, wait=True, timeout=5) == "ok"
    assert len(attempts) == 3
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(attempts))
    kinds = types(await get_workflow_events(run_id, storage=store))
    assert kinds.count("step.failed") == 2 and kinds.count("step.retrying") == 2
    assert kinds.count("step.completed") == 1


async def test_fatal_error_fails_run_without_retry(store: StorageBackend) -> None:
    calls = 0

    @step(max_retries=5)
    async def charge() -> None:
        nonlocal calls
        calls += 1
        raise FatalError("card declined")

    @workflow(name="fatal")
    async def fatal() -> None:
        await charge()

    with pytest.raises(FatalError, match="card declined"):
        await start(fatal, durable=True, storage=store)
    assert calls == 1
    (run,), _ = await store.list_runs()
    assert run.status is RunStatus.FAILED and run.error == "card declined"
    failed = [e for e in await store.get_events(run.run_id) if e.type.value == "step.failed"]
    assert len(failed) == 1 and failed[0].data["is_retryable"] is False


async def test_exhausted_retries_fail_with_clear_message(store: StorageBackend) -> None:
    @step(max_retries=1, retry_delay=0.05)
    async def broken() -> None:
        raise ValueError("boom")

    @workflow(name="exhaust")
    async def exhaust() -> None:
        await broken()

    run_id = await start(exhaust, durable=True, storage=store)
    with pytest.raises(Exception, match="failed after 2 attempts: boom"):
        await get_workflow_result(run_id, storage=store, wait=True, timeout=5)
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED


async def test_retryable_error_retry_after_overrides_delay(store: StorageBackend) -> None:
    seen: list[float] = []

    @step(max_retries=1, retry_delay="1h")
    async def limited() -> str:
        seen.append(time.monotonic())
        if len(seen) == 1:
            raise RetryableError("rate limited", retry_after=1)
        return "done"

    @workflow(name="ratelimited")
    async def ratelimited() -> str:
        return await limited()

    run_id = await start(ratelimited, durable=True, storage=store)
    assert await get_workflow_result(run_id, storage=store, wait=True, timeout=5) == "done"
    assert 1.0 <= seen[1] - seen[0] < 3.0


async def test_caught_sleep_still_suspends(store: StorageBackend) -> None:
    @workflow(name="catcher")
    async def catcher() -> str:
        try:
            await sleep("1h")
        except Exception:  # must not swallow the suspension
            return "swallowed"
        return "slept"

    run_id = await start(catcher, durable=True, storage=store)
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    (timer,) = await store.list_timers(run_id)
    assert (timer.fire_at - datetime.now(UTC)).total_seconds() > 3500


async def test_identical_calls_get_distinct_ids(store: StorageBackend) -> None:
    counter = 0

    @step
    async def tick() -> int:
        nonlocal counter
        counter += 1
        return counter

    @workflow(name="ticker")
    async def ticker() -> list[int]:
        return [await tick(), await tick(), await tick()]

    run_id = await start(ticker, durable=True, storage=store)
    assert await get_workflow_result(run_id, storage=store) == [1, 2, 3]
    ids = [e.data["step_id"] for e in await store.get_events(run_id, ["step.completed"])]
    assert len(set(ids)) == 3 and ids[1] == ids[0] + "_2"


async def test_gather_runs_steps_concurrently(store: StorageBackend) -> None:
    running = 0
    peak = 0

    @step
    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return i * i

    @workflow(name="fanout")
    async def fanout() -> list[int]:
        return list(await asyncio.gather(*(work(i) for i in range(5))))

    run_id = await start(fanout, durable=True, storage=store)
    assert await get_workflow_result(run_id, storage=store) == [0, 1, 4, 9, 16]
    assert peak == 5
