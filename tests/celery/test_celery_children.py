"""Child workflows on the Celery runtime: real Redis, a workflow worker, two step
workers of two processes each, Beat.

The flows are in tests/celery/child_flows.py; their step bodies log pid, start and end
to a file, so "in parallel", "on which process" and "ran once" are measured. Short
recovery timings (``FAST_RECOVERY``) let the crash tests recover in seconds. Numbers
worth knowing are printed (``-s``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pyworkflow import cancel_workflow, configure, get_workflow_result, start
from pyworkflow.engine import dispatch
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun
from tests.celery import child_flows
from tests.celery.child_flows import expected_tree, max_overlap, no_timers, runs_tagged, tree_runs
from tests.celery.conftest import STEP_WORKER, WORKFLOW_WORKER, Cluster, new_cluster
from tests.celery.flows import runs_of
from tests.servers import RedisServer
from tests.support import descendants, eventually

assert celery_runtime.CeleryRuntime  # imported for its registration

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

#: A dead activation's run, a lost resume (or child start) and lost follow-ups: 3 s.
FAST_RECOVERY = {
    "PYWORKFLOW_LEASE_SECONDS": "3",
    "PYWORKFLOW_RESUME_GUARD_SECONDS": "3",
    "PYWORKFLOW_STEP_REDISPATCH_SECONDS": "10",
    "PYWORKFLOW_FOLLOWUP_DELAY_SECONDS": "3",
    "PYWORKFLOW_TEST_CRASH_AFTER_END": "1",
}
CHILDREN = 20
STEP_SECONDS = 0.5
STEP_WORKERS = ("steps1", "steps2")


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One workflow worker, two step workers of two processes each, Beat."""
    group = new_cluster(redis_server, tmp_path_factory.mktemp("children"), **FAST_RECOVERY)
    try:
        group.worker("wf", WORKFLOW_WORKER, "--pool=solo")
        for name in STEP_WORKERS:
            group.worker(name, STEP_WORKER, "--pool=prefork", "--concurrency=2")
        group.beat("beat")
        yield group
    finally:
        group.close()


@pytest.fixture
async def client(
    celery_env: dict[str, Any], store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StorageBackend]:
    """This process as the application: Celery runtime (``cancel_workflow`` wakes runs
    through it), the cluster's storage and resume guard."""
    monkeypatch.setattr(dispatch, "RESUME_GUARD_SECONDS", 3.0)
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
        reached, timeout=timeout, interval=0.01, message=f"{run_id} never reached {wanted}"
    )
    return run


async def _finished(store: StorageBackend, run_id: str, timeout: float = 30) -> WorkflowRun:
    return await _status(store, run_id, *TERMINAL_STATUSES, timeout=timeout)


async def _types(store: StorageBackend, run_id: str) -> list[str]:
    return [e.type.value for e in await store.get_events(run_id)]


async def _count(store: StorageBackend, run_id: str, kind: str) -> int:
    return len(await store.get_events(run_id, [kind]))


async def _sleeping_child(store: StorageBackend, run_id: str) -> WorkflowRun:
    """The run's only child, once it is SUSPENDED in its sleep."""

    async def asleep() -> WorkflowRun | None:
        children = await store.get_children(run_id)
        if len(children) != 1 or children[0].status is not RunStatus.SUSPENDED:
            return None
        return children[0] if await _count(store, children[0].run_id, "sleep.started") else None

    child: WorkflowRun = await eventually(asleep, timeout=20, message="the child never slept")
    return child


def _step_pids(cluster: Cluster) -> dict[str, set[int]]:
    return {name: set(descendants(cluster.procs[name].pid)) for name in STEP_WORKERS}


async def _check_children(
    store: StorageBackend, parent_id: str, count: int, depth: int = 1, steps: int = 1
) -> list[WorkflowRun]:
    """``count`` children, each created once, COMPLETED, linked to the parent; the
    parent's log has one start and one outcome per child, and nothing twice."""
    children = await store.get_children(parent_id)
    assert len(children) == count, [c.run_id for c in children]
    assert all(c.status is RunStatus.COMPLETED for c in children), [
        (c.run_id, c.status, c.error) for c in children
    ]
    assert all(c.parent_run_id == parent_id and c.nesting_depth == depth for c in children)
    started = await store.get_events(parent_id, ["child_workflow.started"])
    completed = await store.get_events(parent_id, ["child_workflow.completed"])
    assert len({e.data["child_id"] for e in started}) == len(started) == count
    assert {e.data["child_run_id"] for e in started} == {c.run_id for c in children}
    assert Counter(e.data["child_id"] for e in completed) == Counter(
        e.data["child_id"] for e in started
    )
    for child in children:  # the child's steps: each recorded once
        assert await _count(store, child.run_id, "step.completed") == steps
        assert await _count(store, child.run_id, "workflow.completed") == 1
    return children


# ------------------------------------------------------------------ fan-out


async def test_fan_out_of_20_children_runs_them_in_parallel(
    cluster: Cluster, client: StorageBackend
) -> None:
    store, tag = client, _tag()
    began = time.monotonic()
    run_id = await _launch(store, child_flows.fan_out, tag, CHILDREN, STEP_SECONDS)

    async def waiting_on_all() -> bool:
        run = await store.get_run(run_id)
        return (
            run is not None
            and run.status is RunStatus.SUSPENDED
            and await _count(store, run_id, "child_workflow.started") == CHILDREN
        )

    await eventually(waiting_on_all, timeout=20, message="the parent never waited on 20 children")
    run = await _finished(store, run_id, timeout=60)
    elapsed = time.monotonic() - began
    assert run.status is RunStatus.COMPLETED, run.error
    assert await get_workflow_result(run_id, storage=store) == [i * i for i in range(CHILDREN)]
    await _check_children(store, run_id, CHILDREN)

    # All 20 starts were recorded by one activation, before any outcome came back.
    types = await _types(store, run_id)
    first_outcome = types.index("child_workflow.completed")
    assert types[1 : 1 + CHILDREN] == ["child_workflow.started"] * CHILDREN, types
    assert first_outcome > CHILDREN

    bodies = {i: runs_of("child_work", f"{tag}:{i}") for i in range(CHILDREN)}
    assert all(len(b) == 1 for b in bodies.values()), bodies
    spans = [(start, end) for ((_, start, end),) in bodies.values()]
    pids = {pid for ((pid, _, _),) in bodies.values()}
    workers = _step_pids(cluster)
    assert pids <= set().union(*workers.values()), "a child's step ran off the step workers"
    assert all(pids & w for w in workers.values()), "a step worker got no child step"
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    overlap = max_overlap(spans)
    sequential = CHILDREN * STEP_SECONDS
    print(
        f"\n{CHILDREN} children x {STEP_SECONDS}s step: steps spanned {span:.2f}s "
        f"({sequential:.0f}s one after another), up to {overlap} at once on {len(pids)} "
        f"processes of 2 step workers; start() to parent COMPLETED {elapsed:.2f}s"
    )
    assert overlap >= 3 and len(pids) >= 3, (overlap, pids)
    assert span < sequential / 2, span


# ------------------------------------------------------------------ waiting


async def test_parent_suspends_while_its_child_sleeps(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.waits_on_sleeper, tag, "2s")
    child = await _sleeping_child(store, run_id)
    parent = await store.get_run(run_id)
    assert parent is not None and parent.status is RunStatus.SUSPENDED
    assert await store.list_timers(run_id) == [], "a waiting parent holds no timer"
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED and run.result == '"child said 49"', run.error
    child_run = await store.get_run(child.run_id)
    assert child_run is not None and child_run.status is RunStatus.COMPLETED
    (slept,) = await store.get_events(child.run_id, ["sleep.started"])
    (woke,) = await store.get_events(child.run_id, ["sleep.completed"])
    assert (woke.timestamp - slept.timestamp).total_seconds() >= 2.0
    assert await _types(store, run_id) == [
        "workflow.started",
        "child_workflow.started",
        "child_workflow.completed",
        "workflow.completed",
    ]
    assert len(runs_of("child_work", f"{tag}:7")) == 1


async def test_tree_three_levels_deep_completes(client: StorageBackend) -> None:
    store, tag = client, _tag()
    began = time.monotonic()
    run_id = await _launch(store, child_flows.tree, tag, "r", 0, 3, 2)
    run = await _finished(store, run_id, timeout=60)
    assert run.status is RunStatus.COMPLETED, run.error
    assert await get_workflow_result(run_id, storage=store) == expected_tree("r", 0, 3, 2)
    runs = await tree_runs(store, run_id)
    print(f"\ntree of {len(runs)} runs, depth 3: {time.monotonic() - began:.2f}s")
    assert Counter(r.nesting_depth for r in runs) == {0: 1, 1: 2, 2: 4, 3: 8}
    assert all(r.status is RunStatus.COMPLETED for r in runs)
    for parent in runs:
        if parent.nesting_depth < 3:
            leaves = 1 if parent.nesting_depth == 2 else 0
            await _check_children(store, parent.run_id, 2, parent.nesting_depth + 1, leaves)
    leaves = [f"r.{a}.{b}.{c}" for a in range(2) for b in range(2) for c in range(2)]
    assert all(len(runs_of("tree_leaf", f"{tag}:{leaf}")) == 1 for leaf in leaves)


async def test_fourth_level_fails_with_max_nesting_depth(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.tree, tag, "r", 0, 4, 1)
    run = await _finished(store, run_id, timeout=30)
    assert run.status is RunStatus.FAILED
    runs = await tree_runs(store, run_id)
    assert [r.nesting_depth for r in runs] == [0, 1, 2, 3], "a run was created below depth 3"
    assert all(r.status is RunStatus.FAILED for r in runs)
    errors = []
    for r in runs:
        (failed,) = await store.get_events(r.run_id, ["workflow.failed"])
        errors.append(failed.data["error_type"])
    assert errors == ["ChildWorkflowFailedError"] * 3 + ["MaxNestingDepthError"], errors
    deepest = runs[-1]
    assert deepest.error is not None and "Maximum nesting depth of 3" in deepest.error
    assert await _count(store, deepest.run_id, "child_workflow.started") == 0
    (told,) = await store.get_events(runs[2].run_id, ["child_workflow.failed"])
    assert told.data["error_type"] == "MaxNestingDepthError"
    assert runs_of("tree_leaf", f"{tag}:r.0.0.0.0") == []


async def test_failing_child_is_caught_by_the_parent(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.catches, tag)
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    caught = await get_workflow_result(run_id, storage=store)
    (child,) = await store.get_children(run_id)
    assert child.status is RunStatus.FAILED and child.parent_run_id == run_id
    assert caught["child_run_id"] == child.run_id
    # The child failed as its step did: retries exhausted (max_retries=0).
    (failed,) = await store.get_events(child.run_id, ["workflow.failed"])
    assert caught["error"] == child.error == failed.data["error"], caught
    assert caught["error_type"] == failed.data["error_type"] == "RetryableError"
    assert "card declined" in caught["error"]
    assert caught["fallback"] == "9"
    assert len(runs_of("boom", tag)) == 1  # max_retries=0: one attempt
    assert await _types(store, run_id) == [
        "workflow.started",
        "child_workflow.started",
        "child_workflow.failed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]


async def test_fire_and_forget_handles_awaited_in_the_parent(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.fire_and_forget, tag, 3, 0.3)
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    result = await get_workflow_result(run_id, storage=store)
    children = await _check_children(store, run_id, 3)
    assert result["handles"] == [c.run_id for c in children]
    assert result["results"] == [0, 1, 4] and result["own"] == 10000
    started = await store.get_events(run_id, ["child_workflow.started"])
    assert [e.data.get("wait_for_completion") for e in started] == [False] * 3
    # The parent's own step ran while its children did: it did not wait to start them.
    own = runs_of("child_work", f"{tag}:100")
    first_child_end = min(runs_of("child_work", f"{tag}:{i}")[0][2] for i in range(3))
    assert len(own) == 1 and own[0][1] < first_child_end


# ------------------------------------------------------------------ cancellation


async def test_cancelling_a_parent_cancels_its_sleeping_child(client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.waits_on_sleeper, tag, "1h")
    child = await _sleeping_child(store, run_id)
    await _status(store, run_id, RunStatus.SUSPENDED)
    requested = time.monotonic()
    assert await cancel_workflow(run_id, reason="order withdrawn", wait=True, timeout=20)
    parent = await store.get_run(run_id)
    assert parent is not None and parent.status is RunStatus.CANCELLED
    child_run = await _finished(store, child.run_id, timeout=20)
    print(f"\nparent and sleeping child CANCELLED {time.monotonic() - requested:.2f}s after")
    assert child_run.status is RunStatus.CANCELLED, child_run.error
    (request,) = await store.get_events(child.run_id, ["cancellation.requested"])
    assert f"Parent workflow {run_id}" in str(request.data.get("reason")), request.data
    assert await _count(store, child.run_id, "workflow.cancelled") == 1
    assert runs_of("child_work", f"{tag}:7") == [], "the child went on past its sleep"
    for rid in (run_id, child.run_id):
        await eventually(
            lambda r=rid: no_timers(store, r), timeout=10, message=f"timers left on {rid}"
        )


async def test_handle_cancel_inside_the_parent_runs_the_compensation_on_a_step_worker(
    cluster: Cluster, client: StorageBackend
) -> None:
    """``handle.cancel()`` in the parent's code (on the workflow worker): the child
    wakes, its compensation step runs on a step worker, the parent sees the failure."""
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.cancels_by_handle, tag)
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    result = await get_workflow_result(run_id, storage=store)
    assert result.startswith("CancellationError: Cancelled"), result
    (child,) = await store.get_children(run_id)
    child_types = await _types(store, child.run_id)
    assert child_types.index("sleep.started") < child_types.index("cancellation.requested")
    assert child.status is RunStatus.CANCELLED
    ((pid, _, _),) = runs_of("child_work", f"{tag}:8")
    steps = set().union(*_step_pids(cluster).values())
    assert pid in steps, (
        f"the child's compensation step ran in process {pid}, not on a step worker "
        f"(workflow worker: {cluster.procs['wf'].pid})"
    )
    assert await _count(store, child.run_id, "step.completed") == 1


async def test_parent_that_ends_first_cancels_its_unfinished_child(
    client: StorageBackend,
) -> None:
    """TERMINATE: a fire-and-forget child still sleeping when its parent completes."""
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.abandons, tag)
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    (child,) = await store.get_children(run_id)
    assert await get_workflow_result(run_id, storage=store) == child.run_id
    child_run = await _finished(store, child.run_id, timeout=20)
    assert child_run.status is RunStatus.CANCELLED, child_run.error
    (request,) = await store.get_events(child.run_id, ["cancellation.requested"])
    assert f"Parent workflow {run_id} completed" in str(request.data.get("reason"))
    assert runs_of("child_work", f"{tag}:7") == []
    # The parent's log tells how the child ended, after its own end (as upstream's did).
    await eventually(lambda: _count(store, run_id, "child_workflow.cancelled"), timeout=10)
    assert (await _types(store, run_id))[-2:] == ["workflow.completed", "child_workflow.cancelled"]
    for rid in (run_id, child.run_id):
        await eventually(lambda r=rid: no_timers(store, r), timeout=10)


async def test_one_failing_child_of_a_gather_fails_the_parent_and_cancels_the_rest(
    client: StorageBackend,
) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.one_of_three_fails, tag)
    run = await _finished(store, run_id, timeout=20)
    assert run.status is RunStatus.FAILED, run.status
    (failed,) = await store.get_events(run_id, ["workflow.failed"])
    assert failed.data["error_type"] == "ChildWorkflowFailedError"
    assert "card declined" in str(run.error)
    children = await store.get_children(run_id)
    by_name = Counter(c.workflow_name for c in children)
    assert by_name == {"celery_child_sleeper": 2, "celery_child_fails": 1}, by_name
    for child in children:
        ended = await _finished(store, child.run_id, timeout=20)
        failing = child.workflow_name == "celery_child_fails"
        wanted = RunStatus.FAILED if failing else RunStatus.CANCELLED
        assert ended.status is wanted, (child.workflow_name, ended.status, ended.error)
    assert runs_of("child_work", f"{tag}-a:7") == runs_of("child_work", f"{tag}-b:7") == []


# ------------------------------------------------------------------ crashes


async def _check_fan_out_after_crash(store: StorageBackend, run_id: str, tag: str) -> None:
    assert await get_workflow_result(run_id, storage=store) == [i * i for i in range(CHILDREN)]
    children = await _check_children(store, run_id, CHILDREN)
    # No child run exists twice (each was created once, under one id).
    leaves = await runs_tagged(store, "celery_child_leaf", tag)
    assert sorted(r.run_id for r in leaves) == sorted(c.run_id for c in children)
    for i in range(CHILDREN):
        assert len(runs_of("child_work", f"{tag}:{i}")) == 1, f"child {i}'s step ran twice"


async def test_workflow_worker_killed_mid_fan_out(cluster: Cluster, client: StorageBackend) -> None:
    """SIGKILL while the parent's activation records its 20 starts (or just after),
    so that some child starts are recorded, some runs created, and their resume
    messages not yet sent."""
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.fan_out, tag, CHILDREN, STEP_SECONDS)
    await eventually(
        lambda: _count(store, run_id, "child_workflow.started"), timeout=20, interval=0.002
    )
    cluster.kill("wf")
    killed_at = time.monotonic()
    starts = await _count(store, run_id, "child_workflow.started")
    created = len(await store.get_children(run_id))
    cluster.restart("wf")
    run = await _finished(store, run_id, timeout=60)
    assert run.status is RunStatus.COMPLETED, run.error
    print(
        f"\nworkflow worker killed with {starts} child starts recorded and {created} "
        f"child runs created: the fan-out completed {time.monotonic() - killed_at:.2f}s later"
    )
    await _check_fan_out_after_crash(store, run_id, tag)


async def test_workflow_worker_killed_with_20_children_in_flight(
    cluster: Cluster, client: StorageBackend
) -> None:
    """Child 10's first activation blocks the workflow worker, which is SIGKILLed
    there: the children before it have steps in flight, the ones after wait in Redis."""
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.fan_out, tag, CHILDREN, STEP_SECONDS, 10)
    marker = child_flows.hang_marker(tag)
    pid = await eventually(lambda: marker.exists() and marker.read_text(), timeout=30)
    assert int(pid) == cluster.procs["wf"].pid
    children = await store.get_children(run_id)
    dispatched = [c for c in children if await _count(store, c.run_id, "step.started")]
    cluster.kill("wf")
    killed_at = time.monotonic()
    cluster.restart("wf")
    run = await _finished(store, run_id, timeout=60)
    assert run.status is RunStatus.COMPLETED, run.error
    print(
        f"\nworkflow worker killed in child 10's activation ({len(dispatched)} child steps "
        f"dispatched): "
        f"the fan-out completed {time.monotonic() - killed_at:.2f}s later"
    )
    await _check_fan_out_after_crash(store, run_id, tag)
    assert len(dispatched) >= 5, "too few children in flight to test anything"
    interrupted = [c for c in children if await _count(store, c.run_id, "workflow.interrupted")]
    assert len(interrupted) == 1, [c.run_id for c in interrupted]
    assert "10, 0.5, 10]" in interrupted[0].input_args


async def test_crash_between_a_child_end_and_telling_its_parent(
    cluster: Cluster, client: StorageBackend
) -> None:
    """The workflow worker dies (``os._exit``) right after the child's end was
    committed, before the parent's log got the outcome: the child's ``followup`` timer
    tells the parent, which then completes."""
    store, tag = client, _tag()
    run_id = await _launch(store, child_flows.crash_parent, tag)
    marker = child_flows.crash_marker(tag)
    written = await eventually(lambda: marker.exists() and marker.read_text(), timeout=30)
    pid, child_id = written.split()
    assert int(pid) == cluster.procs["wf"].pid
    await eventually(lambda: not cluster.alive("wf"), timeout=10)
    crashed_at = time.monotonic()
    child = await store.get_run(child_id)
    assert child is not None and child.status is RunStatus.COMPLETED
    assert child.parent_run_id == run_id
    parent = await store.get_run(run_id)
    assert parent is not None and parent.status is RunStatus.SUSPENDED
    assert await _count(store, run_id, "child_workflow.completed") == 0
    assert [t.kind for t in await store.list_timers(child_id)] == ["followup"]
    cluster.kill("wf")  # reaps it
    cluster.restart("wf")
    run = await _finished(store, run_id)
    took = time.monotonic() - crashed_at
    print(f"\ncrash before a child's outcome reached its parent: parent done {took:.2f}s later")
    assert run.status is RunStatus.COMPLETED and run.result == '"child said 25"', run.error
    assert await _types(store, run_id) == [
        "workflow.started",
        "child_workflow.started",
        "child_workflow.completed",
        "workflow.completed",
    ]
    assert len(runs_of("child_work", f"{tag}:5")) == 1
    await eventually(lambda: no_timers(store, child_id), timeout=10)
