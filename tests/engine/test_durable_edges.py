"""Determinism, timeouts, idempotency, transient mode, limits and bad input."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from pyworkflow import (
    NondeterminismError,
    RunStatus,
    WorkflowAlreadyRunningError,
    WorkflowTimeoutError,
    configure,
    get_workflow_result,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.core.exceptions import EventLimitExceededError, SerializationError
from pyworkflow.core.registry import _registry
from pyworkflow.storage.base import StorageBackend
from tests.support import eventually


async def test_reordered_steps_raise_nondeterminism(store: StorageBackend) -> None:
    @step
    async def reserve() -> str:
        return "reserved"

    @step
    async def charge() -> str:
        return "charged"

    @workflow(name="order_flow")
    async def v1() -> None:
        await reserve()
        await charge()
        await sleep("1h")

    run_id = await start(v1, durable=True, storage=store)
    del _registry._workflows["order_flow"]

    @workflow(name="order_flow")
    async def v2() -> None:
        await charge()
        await reserve()
        await sleep("1h")

    with pytest.raises(NondeterminismError) as info:
        await resume(run_id, storage=store)
    message = str(info.value)
    assert "step 'reserve'" in message and "step 'charge'" in message
    assert "position 1" in message
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED


async def test_nondeterminism_cannot_be_swallowed(store: StorageBackend) -> None:
    @step
    async def one() -> int:
        return 1

    @step
    async def two() -> int:
        return 2

    @workflow(name="swallow")
    async def v1() -> int:
        await one()
        await sleep("1h")
        return 0

    run_id = await start(v1, durable=True, storage=store)
    del _registry._workflows["swallow"]

    @workflow(name="swallow")
    async def v2() -> int:
        try:
            await two()
        except Exception:
            return -1
        return 0

    with pytest.raises(NondeterminismError):
        await resume(run_id, storage=store)


async def test_step_timeout_is_enforced_and_retryable(store: StorageBackend) -> None:
    attempts = 0

    @step(timeout=0.1, max_retries=1, retry_delay=0)
    async def slow() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(5)
        return "fast enough"

    @workflow(name="timeouts")
    async def timeouts() -> str:
        return await slow()

    run_id = await start(timeouts, durable=True, storage=store)
    assert await get_workflow_result(run_id, storage=store, wait=True, timeout=5) == "fast enough"
    failed = await store.get_events(run_id, ["step.failed"])
    assert failed[0].data["error_type"] == "StepTimeoutError"


async def test_max_duration_fails_sleeping_run_at_deadline(store: StorageBackend) -> None:
    @workflow(name="bounded", max_duration=1)
    async def bounded() -> None:
        await sleep("1h")

    t0 = time.monotonic()
    run_id = await start(bounded, durable=True, storage=store)
    with pytest.raises(Exception, match="max_duration"):
        await get_workflow_result(run_id, storage=store, wait=True, timeout=10)
    assert time.monotonic() - t0 < 5
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    failed = await store.get_events(run_id, ["workflow.failed"])
    assert failed[0].data["error_type"] == "WorkflowTimeoutError"
    assert await store.list_timers(run_id) == []


async def test_max_duration_stops_a_running_step(store: StorageBackend) -> None:
    @step
    async def forever() -> None:
        await asyncio.sleep(60)

    @workflow(name="runaway", max_duration=1)
    async def runaway() -> None:
        await forever()

    with pytest.raises(WorkflowTimeoutError):
        await start(runaway, durable=True, storage=store)


async def test_idempotency_key(store: StorageBackend) -> None:
    gate = asyncio.Event()

    @step
    async def wait_gate() -> str:
        await gate.wait()
        return "done"

    @workflow(name="idem")
    async def idem() -> str:
        return await wait_gate()

    first = asyncio.create_task(start(idem, durable=True, storage=store, idempotency_key="k1"))
    await eventually(lambda: store.get_run_by_idempotency_key("k1"))
    with pytest.raises(WorkflowAlreadyRunningError):
        await start(idem, durable=True, storage=store, idempotency_key="k1")
    gate.set()
    run_id = await first
    again = await start(idem, durable=True, storage=store, idempotency_key="k1")
    assert again == run_id
    runs, _ = await store.list_runs()
    assert len(runs) == 1


async def test_transient_runs_persist_nothing(store: StorageBackend) -> None:
    calls = 0

    @step(max_retries=2, retry_delay=0.01)
    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise RuntimeError("once")
        return calls

    @workflow(name="transient_wf")
    async def transient_wf() -> int:
        await sleep(0.01)
        return await flaky()

    configure(storage=store)
    run_id = await start(transient_wf, durable=False)
    assert run_id.startswith("run_") and calls == 2
    assert await store.get_run(run_id) is None
    assert (await store.list_runs())[0] == []


async def test_event_hard_limit_fails_run(store: StorageBackend) -> None:
    @step
    async def noop(i: int) -> int:
        return i

    @workflow(name="chatty")
    async def chatty() -> None:
        for i in range(10):
            await noop(i)

    with pytest.warns(UserWarning, match="not recommended"):
        configure(event_hard_limit=6, event_soft_limit=4)
    with pytest.raises(EventLimitExceededError, match=r"exceeded maximum event limit: 7 >= 6"):
        await start(chatty, durable=True, storage=store)


async def test_bad_sleep_duration_records_no_sleep(store: StorageBackend) -> None:
    @workflow(name="bad_sleep")
    async def bad_sleep() -> None:
        await sleep("5x")

    with pytest.raises(ValueError, match="Invalid duration format: '5x'"):
        await start(bad_sleep, durable=True, storage=store)
    (run,), _ = await store.list_runs()
    assert run.status is RunStatus.FAILED
    assert await store.get_events(run.run_id, ["sleep.started"]) == []
    assert await store.list_timers(run.run_id) == []


async def test_unregistered_and_unserializable_input_write_nothing(store: StorageBackend) -> None:
    async def plain() -> None:
        return None

    with pytest.raises(ValueError, match="not registered as a workflow"):
        await start(plain, durable=True, storage=store)

    @workflow(name="takes_lock")
    async def takes_lock(lock: object) -> None:
        return None

    configure(allow_pickle=False)
    with pytest.raises(SerializationError, match="lock"):
        await start(takes_lock, threading.Lock(), durable=True, storage=store)
    assert (await store.list_runs())[0] == []


def test_bad_retry_delay_is_rejected_at_decoration() -> None:
    with pytest.raises(ValueError, match="soon"):

        @step(retry_delay="soon")
        async def nope() -> None:
            return None


async def test_thousand_step_workflow(store: StorageBackend) -> None:
    @step
    async def inc(i: int) -> int:
        return i + 1

    @workflow(name="long_haul")
    async def long_haul() -> int:
        total = 0
        for _ in range(1000):
            total = await inc(total)
        return total

    run_id = await start(long_haul, durable=True, storage=store)
    assert await get_workflow_result(run_id, storage=store) == 1000


async def test_corrupt_sqlite_file_is_a_clear_error_and_left_alone(tmp_path: Path) -> None:
    from pyworkflow import SQLiteStorageBackend
    from pyworkflow.storage.base import CorruptStorageError

    @workflow(name="never_runs")
    async def never_runs() -> None:
        return None

    db = tmp_path / "broken.db"
    garbage = bytes(range(256)) * 16
    db.write_bytes(garbage)
    with pytest.raises(CorruptStorageError, match=r"broken\.db") as info:
        await start(never_runs, durable=True, storage=SQLiteStorageBackend(str(db)))
    assert "backup" in str(info.value)
    assert db.read_bytes() == garbage


async def test_failed_start_names_its_run(store: StorageBackend) -> None:
    """start() returns no id when the run fails at once; the re-raised error carries it."""

    @workflow(name="fails_at_once")
    async def fails_at_once() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError) as caught:
        await start(fails_at_once, durable=True, storage=store)
    run_id = caught.value.run_id  # type: ignore[attr-defined]
    run = await store.get_run(run_id)
    assert run is not None and run.status.value == "failed"
