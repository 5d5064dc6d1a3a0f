"""Cancellation on the Celery runtime: real Redis, workflow and step workers, Beat.

``cancel_workflow`` runs here, in the application process, under
``configure(default_runtime="celery")``: it records ``cancellation.requested`` in the
shared storage and, for a waiting run, sends a resume to the workers (with a ``wake``
timer in case that message is lost). The workflows are in tests/celery/hook_flows.py;
their step bodies log each run to a file, so "stopped", "ran once" and "never ran"
are counted, not assumed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pyworkflow import cancel_workflow, configure, resume_hook, start
from pyworkflow.core.exceptions import HookNotFoundError
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, HookStatus, RunStatus, WorkflowRun
from tests.celery import hook_flows
from tests.celery.conftest import Cluster
from tests.celery.flows import runs_of
from tests.support import eventually, wait_until

assert celery_runtime.CeleryRuntime  # imported for its registration

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
async def client(
    celery_env: dict[str, Any], store: StorageBackend
) -> AsyncIterator[StorageBackend]:
    """This process as the application, on the Celery runtime and the cluster's storage."""
    configure(default_runtime="celery", storage=store)
    yield store


def _tag() -> str:
    return uuid.uuid4().hex[:10]


async def _launch(store: StorageBackend, wf: Any, *args: Any) -> str:
    return await start(wf, *args, runtime="celery", durable=True, storage=store)


async def _status(
    store: StorageBackend, run_id: str, *wanted: RunStatus, timeout: float = 30
) -> WorkflowRun:
    async def reached() -> WorkflowRun | None:
        run = await store.get_run(run_id)
        return run if run is not None and run.status in wanted else None

    run: WorkflowRun = await eventually(
        reached, timeout=timeout, interval=0.01, message=f"run never reached {wanted}"
    )
    return run


async def _events(store: StorageBackend, run_id: str, kind: str) -> list[Any]:
    return await store.get_events(run_id, [kind])


async def _check_cancelled(store: StorageBackend, run_id: str) -> WorkflowRun:
    """CANCELLED by its own code, with one ``workflow.cancelled``, nothing recorded
    twice, no timers left."""
    run = await store.get_run(run_id)
    events = await store.get_events(run_id)
    log = [f"{e.type.value} {e.data.get('step_name', '')}".strip() for e in events]
    assert run is not None and run.status is RunStatus.CANCELLED, (run and run.error, log)
    (cancelled,) = await _events(store, run_id, "workflow.cancelled")
    # True: the workflow's code saw CancellationError (and could clean up).
    assert cancelled.data["cleanup_completed"] is True
    outcomes = Counter(
        (e.type.value, e.data.get("step_id"), e.data.get("attempt"))
        for e in events
        if e.type.value in ("step.completed", "step.failed")
    )
    assert all(n == 1 for n in outcomes.values()), outcomes
    started = Counter(
        (e.data["step_id"], e.data.get("attempt"), e.data.get("dispatch"))
        for e in events
        if e.type.value == "step.started"
    )
    assert all(n == 1 for n in started.values()), started
    assert log[-1] == "workflow.cancelled", f"recorded after the end: {log}"
    assert await store.list_timers(run_id) == []
    assert not await store.check_cancellation_flag(run_id)
    return run


@pytest.mark.parametrize("cleanup_seconds", [0.0, 0.5], ids=["quick-cleanup", "slow-cleanup"])
async def test_loop_cancelled_midway_stops_and_cleans_up_once(
    client: StorageBackend, cleanup_seconds: float
) -> None:
    """The request comes while a loop step runs on the step worker. With the slow
    cleanup, that step finishes (and reports its outcome) while the cleanup runs."""
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.cancel_loop, tag, 20, 0.1, cleanup_seconds)
    wait_until(lambda: len(runs_of("loop", f"{tag}:5")) == 1, timeout=30)
    requested = time.monotonic()
    assert await cancel_workflow(run_id, reason="enough", wait=True, timeout=20)
    print(f"\n20-step loop: CANCELLED {time.monotonic() - requested:.2f}s after cancel_workflow")
    await asyncio.sleep(0.5)  # the step in flight (100 ms) has finished and reported
    await _check_cancelled(store, run_id)
    assert len(runs_of("cleanup", tag)) == 1

    ran = [i for i in range(20) if runs_of("loop", f"{tag}:{i}")]
    assert ran == list(range(len(ran))) and 6 <= len(ran) < 20, ran
    assert all(len(runs_of("loop", f"{tag}:{i}")) == 1 for i in ran)
    # Every body that ran was dispatched before the request; after it, only the cleanup.
    events = await store.get_events(run_id)
    (request,) = [e for e in events if e.type.value == "cancellation.requested"]
    started = [e for e in events if e.type.value == "step.started"]
    before = [e for e in started if e.sequence < request.sequence]
    assert len(before) == len(ran) and all(
        e.data["step_name"] == "celery_cancel_loop_step" for e in before
    )
    after = [e.data["step_name"] for e in started if e.sequence > request.sequence]
    assert after == ["celery_cancel_cleanup"], after
    (cancelled,) = await _events(store, run_id, "workflow.cancelled")
    assert cancelled.data["reason"] == "enough"


async def test_sleeping_run_is_cancelled_at_once_and_compensates(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.cancel_sleeper, tag)
    await eventually(lambda: _events(store, run_id, "sleep.started"), timeout=20)
    await _status(store, run_id, RunStatus.SUSPENDED)
    began = time.monotonic()
    assert await cancel_workflow(run_id, reason="plans changed", wait=True, timeout=10)
    took = time.monotonic() - began
    print(f"\nsleep('1h') cancelled: CANCELLED {took:.2f}s after cancel_workflow")
    assert took < 5.0
    await _check_cancelled(store, run_id)
    assert len(runs_of("reserve", tag)) == 1 and len(runs_of("release", tag)) == 1


async def test_run_waiting_on_a_hook_is_cancelled_and_its_hook_disposed(
    client: StorageBackend,
) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.cancel_hook, tag)
    _, token = await eventually(lambda: hook_flows.read_token(tag), timeout=20)
    await _status(store, run_id, RunStatus.SUSPENDED)
    assert await cancel_workflow(run_id, wait=True, timeout=10)
    await _check_cancelled(store, run_id)
    (hook,) = await store.list_hooks(run_id=run_id)
    assert hook.status is HookStatus.DISPOSED
    with pytest.raises(HookNotFoundError):  # HookDisposedError: its run has ended
        await resume_hook(token, {"late": True})
    assert await _events(store, run_id, "hook.received") == []


async def test_long_step_polling_check_cancellation_stops_soon(
    cluster: Cluster, client: StorageBackend
) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.cooperative_flow, tag, 30.0)
    wait_until((cluster.workdir / f"{tag}.started").exists, timeout=20)
    requested = time.time()
    assert await cancel_workflow(run_id, reason="maintenance", storage=store)
    await _status(store, run_id, RunStatus.CANCELLED, timeout=10)
    (_, _, stopped), *more = await eventually(lambda: runs_of("stopped", tag), timeout=10)
    print(f"\ncooperative step stopped {stopped - requested:.2f}s after the request")
    assert not more and 0 <= stopped - requested < 2.0
    assert runs_of("finished", tag) == []
    await asyncio.sleep(0.5)  # the stopped step has reported to the storage
    await _check_cancelled(store, run_id)
    assert await _events(store, run_id, "step.completed") == []


async def test_cancelling_a_finished_run_returns_false(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.cooperative_flow, tag, 0.0)
    run = await _status(store, run_id, *TERMINAL_STATUSES)
    assert run.status is RunStatus.COMPLETED and run.result == '"finished"'
    count = len(await store.get_events(run_id))
    assert await cancel_workflow(run_id, reason="too late") is False
    assert len(await store.get_events(run_id)) == count
    assert (await store.get_run(run_id)).status is RunStatus.COMPLETED  # type: ignore[union-attr]


async def test_cancel_while_the_step_worker_is_killed_mid_step(
    cluster: Cluster, client: StorageBackend
) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.hang_flow, tag)
    wait_until((cluster.workdir / f"{tag}.started").exists, timeout=20)
    cluster.kill("steps")  # SIGKILL mid-step; its message stays unacknowledged in Redis
    try:
        assert await cancel_workflow(run_id, reason="worker gone", storage=store)
    finally:
        cluster.restart("steps")  # the compensation needs a step worker
    await _status(store, run_id, RunStatus.CANCELLED, timeout=30)
    await _check_cancelled(store, run_id)
    assert len(runs_of("hang", tag)) == 1 and len(runs_of("release", tag)) == 1
    assert len(runs_of("reserve", tag)) == 1
    names = [e.data["step_name"] for e in await _events(store, run_id, "step.completed")]
    assert names == ["celery_cancel_reserve", "celery_cancel_release"], names


async def test_cancel_delivered_twice_is_handled_once(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.cancel_sleeper, tag)
    await eventually(lambda: _events(store, run_id, "sleep.started"), timeout=20)
    await _status(store, run_id, RunStatus.SUSPENDED)
    first, second = await asyncio.gather(
        cancel_workflow(run_id, reason="one", storage=store),
        cancel_workflow(run_id, reason="two", storage=store),
    )
    assert first and second
    await _status(store, run_id, RunStatus.CANCELLED, timeout=10)
    # A third request, and a stray resume message, after the end change nothing.
    assert await cancel_workflow(run_id, reason="three", storage=store) is False
    count = len(await store.get_events(run_id))
    await celery_runtime.CeleryRuntime().resume_workflow(run_id, store)
    await asyncio.sleep(1.0)  # give the stray resume time to do harm, if it would
    assert len(await store.get_events(run_id)) == count
    await _check_cancelled(store, run_id)
    assert len(runs_of("release", tag)) == 1
    assert 1 <= len(await _events(store, run_id, "cancellation.requested")) <= 2
