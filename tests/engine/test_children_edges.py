"""Child workflows at the edges, on every backend: a failing sibling in a fan-out,
cancellation cascading down a tree, many fire-and-forget children reporting back at
once, replay that diverges, and racing resumes of a parent and its child."""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime
from typing import Any

import pytest

from pyworkflow import (
    CancellationError,
    ChildWorkflowFailedError,
    NondeterminismError,
    RunStatus,
    cancel_workflow,
    get_workflow_result,
    resume,
    shield,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.runtime.local import timer_service
from pyworkflow.storage.base import StorageBackend
from tests.support import eventually


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def cancel_reasons(store: StorageBackend, run_id: str) -> set[Any]:
    """The reasons of the run's cancellation requests (a request may be recorded
    more than once when two follow-up passes race; each must carry the reason)."""
    return {
        e.data.get("reason") for e in await store.get_events(run_id, ["cancellation.requested"])
    }


async def has_status(store: StorageBackend, run_id: str, status: RunStatus) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status is status


async def _all_ended(store: StorageBackend, run_ids: list[str]) -> bool:
    for run_id in run_ids:
        run = await store.get_run(run_id)
        if run is None or run.status not in (
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        ):
            return False
    return True


async def test_a_failing_sibling_fails_the_parent_and_cancels_the_others(
    store: StorageBackend,
) -> None:
    undo = collections.Counter[int]()

    @step
    async def compensate(i: int) -> None:
        undo[i] += 1

    @workflow(name="che_member")
    async def member(i: int) -> int:
        if i == 2:
            raise ValueError("member 2 is broken")
        try:
            await sleep("1h")
        except CancellationError:
            async with shield():
                await compensate(i)
            raise
        return i

    @workflow(name="che_team")
    async def team() -> list[int]:
        return list(await asyncio.gather(*(start_child_workflow(member, i) for i in range(5))))

    raised: list[BaseException] = []
    try:
        await start(team, durable=True, storage=store)
    except ChildWorkflowFailedError as error:
        raised.append(error)
    runs, _ = await store.list_runs(query="che_team")
    (parent,) = [r for r in runs if r.workflow_name == "che_team"]
    events = kinds(await store.get_events(parent.run_id))
    assert "child_workflow.failed" in events  # child 2's failure reached the parent's log
    # ... and the parent must act on it now, not once a sleeping sibling (1 h) ends.
    assert parent.status is RunStatus.FAILED, (
        f"parent {parent.status.value} with child 2's failure recorded: {events}"
    )
    assert "member 2 is broken" in str(raised[0])
    kids = await store.get_children(parent.run_id)
    assert len(kids) == 5
    await eventually(lambda: _all_ended(store, [k.run_id for k in kids]), timeout=10)
    statuses = {}
    for kid in kids:
        now = await store.get_run(kid.run_id)
        assert now is not None
        statuses[int(kid.input_args.strip("[]"))] = now.status
    assert statuses == {
        0: RunStatus.CANCELLED,
        1: RunStatus.CANCELLED,
        2: RunStatus.FAILED,
        3: RunStatus.CANCELLED,
        4: RunStatus.CANCELLED,
    }
    assert undo == {0: 1, 1: 1, 3: 1, 4: 1}
    for kid in kids:
        if kid.input_args != "[2]":
            reasons = await cancel_reasons(store, kid.run_id)
            assert reasons == {f"Parent workflow {parent.run_id} failed"}


async def test_cancelling_the_root_cancels_the_whole_tree(store: StorageBackend) -> None:
    undo = collections.Counter[str]()

    @step
    async def note(what: str) -> None:
        undo[what] += 1

    def cleanup_on_cancel(name: str, body: Any) -> Any:
        async def wrapped() -> str:
            try:
                return await body()
            except CancellationError:
                async with shield():
                    await note(name)
                raise

        return wrapped

    async def leaf_body() -> str:
        await sleep("1h")
        return "leaf"

    leaf = workflow(name="che_leaf")(cleanup_on_cancel("leaf", leaf_body))

    async def middle_body() -> str:
        return await start_child_workflow(leaf)

    middle = workflow(name="che_middle")(cleanup_on_cancel("middle", middle_body))

    async def root_body() -> str:
        return await start_child_workflow(middle)

    root = workflow(name="che_root")(cleanup_on_cancel("root", root_body))

    root_id = await start(root, durable=True, storage=store)
    (mid,) = await store.get_children(root_id)
    (lf,) = await store.get_children(mid.run_id)
    for run_id in (root_id, mid.run_id, lf.run_id):
        assert await has_status(store, run_id, RunStatus.SUSPENDED)

    assert await cancel_workflow(root_id, reason="abort", storage=store) is True
    await eventually(lambda: _all_ended(store, [root_id, mid.run_id, lf.run_id]), timeout=10)
    for run_id in (root_id, mid.run_id, lf.run_id):
        assert await has_status(store, run_id, RunStatus.CANCELLED), run_id
    assert undo == {"root": 1, "middle": 1, "leaf": 1}
    assert await cancel_reasons(store, mid.run_id) == {f"Parent workflow {root_id} cancelled"}
    assert await cancel_reasons(store, lf.run_id) == {f"Parent workflow {mid.run_id} cancelled"}


async def test_many_fire_and_forget_children_report_back(store: StorageBackend) -> None:
    ran = collections.Counter[int]()

    @step
    async def job(i: int) -> int:
        ran[i] += 1
        await asyncio.sleep(0.001 * (i % 4))
        return i + 100

    @workflow(name="che_bg_job")
    async def bg_job(i: int) -> int:
        return await job(i)

    @workflow(name="che_bg_boss")
    async def boss(n: int) -> list[int]:
        handles = [
            await start_child_workflow(bg_job, i, wait_for_completion=False) for i in range(n)
        ]
        return list(await asyncio.gather(*(h.result() for h in handles)))

    parent_id = await start(boss, 10, durable=True, storage=store)
    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=20)
    assert result == [i + 100 for i in range(10)]
    assert ran == {i: 1 for i in range(10)}
    events = await store.get_events(parent_id)
    assert kinds(events).count("child_workflow.started") == 10
    assert kinds(events).count("child_workflow.completed") == 10
    assert kinds(events)[-1] == "workflow.completed"
    assert [e.sequence for e in events] == list(range(len(events)))
    kids = await store.get_children(parent_id)
    assert {k.status for k in kids} == {RunStatus.COMPLETED} and len(kids) == 10


async def test_changed_child_arguments_on_replay_are_nondeterminism(
    store: StorageBackend,
) -> None:
    version = {"arg": 1}

    @workflow(name="che_versioned_child")
    async def child(x: int) -> int:
        return x

    @workflow(name="che_versioned")
    async def versioned() -> int:
        got = await start_child_workflow(child, version["arg"])
        await sleep("1h")
        return got

    parent_id = await start(versioned, durable=True, storage=store)
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    version["arg"] = 2  # the code changed between two activations
    with pytest.raises(NondeterminismError, match="che_versioned_child"):
        await resume(parent_id, storage=store)
    assert await has_status(store, parent_id, RunStatus.FAILED)
    assert len(await store.get_children(parent_id)) == 1  # no second child was started


async def test_racing_resumes_of_a_parent_and_its_child(store: StorageBackend) -> None:
    ran = collections.Counter[str]()

    @step
    async def finish_up() -> str:
        ran["finish_up"] += 1
        return "done"

    @workflow(name="che_race_child")
    async def child() -> str:
        await sleep(0.2)
        return await finish_up()

    @workflow(name="che_race_parent")
    async def parent() -> str:
        ran["parent body"] += 1
        return await start_child_workflow(child)

    parent_id = await start(parent, durable=True, storage=store)
    (kid,) = await store.get_children(parent_id)
    (timer,) = await store.list_timers(kid.run_id)
    await eventually(lambda: datetime.now(UTC) >= timer.fire_at, timeout=5)
    # No timer service: several resumers of both runs race instead.
    outcomes = await asyncio.gather(
        resume(kid.run_id, storage=store),
        resume(parent_id, storage=store),
        resume(kid.run_id, storage=store),
        resume(parent_id, storage=store),
        return_exceptions=True,
    )
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    await eventually(lambda: has_status(store, parent_id, RunStatus.COMPLETED), timeout=10)
    assert await get_workflow_result(parent_id, storage=store) == "done"
    assert ran["finish_up"] == 1
    parent_events = kinds(await store.get_events(parent_id))
    assert parent_events.count("child_workflow.completed") == 1
    assert parent_events.count("workflow.completed") == 1
    child_events = kinds(await store.get_events(kid.run_id))
    assert child_events.count("sleep.completed") == 1
    assert child_events.count("workflow.completed") == 1


async def test_children_are_visible_while_the_parent_waits(store: StorageBackend) -> None:
    gate = asyncio.Event()

    @step
    async def blocked() -> str:
        await gate.wait()
        return "open"

    @workflow(name="che_gated")
    async def gated() -> str:
        return await blocked()

    @workflow(name="che_gate_parent")
    async def gate_parent() -> str:
        return await start_child_workflow(gated)

    timer_service(store)
    task = asyncio.create_task(start(gate_parent, durable=True, storage=store))
    (kid,) = await eventually(lambda: _children_of_named(store, "che_gate_parent"), timeout=10)
    assert kid.status is RunStatus.RUNNING
    assert kid.nesting_depth == 1
    gate.set()
    parent_id = await asyncio.wait_for(task, 10)
    assert await get_workflow_result(parent_id, storage=store) == "open"


async def _children_of_named(store: StorageBackend, name: str) -> list[Any]:
    runs, _ = await store.list_runs(query=name)
    parents = [r for r in runs if r.workflow_name == name]
    if not parents:
        return []
    kids = await store.get_children(parents[0].run_id)
    return kids if kids and kids[0].status is RunStatus.RUNNING else []


async def test_child_failing_after_a_sleep_reaches_its_parent(store: StorageBackend) -> None:
    caught: list[ChildWorkflowFailedError] = []

    @workflow(name="che_late_failure")
    async def late_failure() -> None:
        await sleep(0.2)
        raise LookupError("gone after the nap")

    @workflow(name="che_late_parent")
    async def late_parent() -> str:
        try:
            await start_child_workflow(late_failure)
        except ChildWorkflowFailedError as error:
            caught.append(error)
            return "handled"
        return "unexpected"

    timer_service(store)
    parent_id = await start(late_parent, durable=True, storage=store)
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=10)
    assert result == "handled"
    (kid,) = await store.get_children(parent_id)
    error = caught[-1]
    assert error.child_run_id == kid.run_id
    assert error.error == "gone after the nap"
    assert error.error_type == "LookupError"
    (outcome,) = await store.get_events(parent_id, ["child_workflow.failed"])
    assert outcome.data["error_type"] == "LookupError"
