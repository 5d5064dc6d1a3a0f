"""Child workflows on every backend: awaited children, fan-out, waiting children,
nesting limits, failures, ids and the storage queries over the tree."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest

from pyworkflow import (
    ChildWorkflowFailedError,
    MaxNestingDepthError,
    RunStatus,
    get_workflow_result,
    resume,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.runtime.local import timer_service
from pyworkflow.storage.base import StorageBackend


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def status_of(store: StorageBackend, run_id: str) -> RunStatus:
    run = await store.get_run(run_id)
    assert run is not None, run_id
    return run.status


async def has_status(store: StorageBackend, run_id: str, status: RunStatus) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status is status


async def test_awaited_child_returns_its_result(store: StorageBackend) -> None:
    ran = collections.Counter[str]()

    @step
    async def double(x: int) -> int:
        ran["double"] += 1
        return 2 * x

    @workflow(name="ch_double")
    async def child(x: int) -> dict[str, int]:
        return {"value": await double(x)}

    @workflow(name="ch_parent")
    async def parent(x: int) -> int:
        got = await start_child_workflow(child, x)
        return got["value"] + 1

    parent_id = await start(parent, 20, durable=True, storage=store)
    assert await status_of(store, parent_id) is RunStatus.COMPLETED
    assert await get_workflow_result(parent_id, storage=store) == 41
    assert ran == {"double": 1}

    events = await store.get_events(parent_id)
    assert kinds(events) == [
        "workflow.started",
        "child_workflow.started",
        "child_workflow.completed",
        "workflow.completed",
    ]
    started, completed = events[1], events[2]
    assert started.data["child_workflow_name"] == "ch_double"
    assert started.data["child_id"].startswith("child_ch_double_")
    assert started.data["wait_for_completion"] is True
    assert completed.data["child_id"] == started.data["child_id"]
    assert completed.data["child_run_id"] == started.data["child_run_id"]

    (kid,) = await store.get_children(parent_id)
    assert kid.run_id == started.data["child_run_id"]
    assert kid.run_id.startswith("run_")
    assert kid.parent_run_id == parent_id
    assert kid.nesting_depth == 1
    assert kid.status is RunStatus.COMPLETED
    assert await get_workflow_result(kid.run_id, storage=store) == {"value": 40}
    # Nothing is left armed on either run once both have ended.
    assert await store.list_timers(parent_id) == []
    assert await store.list_timers(kid.run_id) == []


async def test_fan_out_of_twenty_children_keeps_order(store: StorageBackend) -> None:
    ran = collections.Counter[int]()

    @step
    async def square(i: int) -> int:
        ran[i] += 1
        await asyncio.sleep(0.001 * (i % 3))
        return i * i

    @workflow(name="ch_square")
    async def child(i: int) -> int:
        return await square(i)

    @workflow(name="ch_fan_out")
    async def parent(n: int) -> list[int]:
        return list(await asyncio.gather(*(start_child_workflow(child, i) for i in range(n))))

    parent_id = await start(parent, 20, durable=True, storage=store)
    assert await get_workflow_result(parent_id, storage=store) == [i * i for i in range(20)]
    assert ran == {i: 1 for i in range(20)}
    children = await store.get_children(parent_id)
    assert len(children) == 20
    assert {c.status for c in children} == {RunStatus.COMPLETED}
    assert {c.nesting_depth for c in children} == {1}
    types = kinds(await store.get_events(parent_id))
    assert types.count("child_workflow.started") == 20
    assert types.count("child_workflow.completed") == 20
    assert types[-1] == "workflow.completed"


async def test_parent_suspends_while_its_child_sleeps(store: StorageBackend) -> None:
    ran = collections.Counter[str]()

    @step
    async def after_nap() -> str:
        ran["after_nap"] += 1
        return "rested"

    @workflow(name="ch_napper")
    async def child() -> str:
        await sleep(0.3)
        return await after_nap()

    @workflow(name="ch_waiting_parent")
    async def parent() -> str:
        ran["parent body"] += 1
        return "parent got " + await start_child_workflow(child)

    timer_service(store)
    parent_id = await start(parent, durable=True, storage=store)
    assert await status_of(store, parent_id) is RunStatus.SUSPENDED
    (kid,) = await store.get_children(parent_id)
    assert kid.status is RunStatus.SUSPENDED
    assert ran["after_nap"] == 0

    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=10)
    assert result == "parent got rested"
    assert await status_of(store, kid.run_id) is RunStatus.COMPLETED
    assert ran["after_nap"] == 1
    # Replayed once after the wake-up, never re-started the child.
    assert ran["parent body"] == 2
    assert len(await store.get_children(parent_id)) == 1
    assert kinds(await store.get_events(parent_id)).count("child_workflow.started") == 1


async def test_three_levels_deep(store: StorageBackend) -> None:
    @workflow(name="ch_leaf")
    async def leaf(x: int) -> int:
        return x + 1

    @workflow(name="ch_middle")
    async def middle(x: int) -> int:
        return 10 * await start_child_workflow(leaf, x)

    @workflow(name="ch_upper")
    async def upper(x: int) -> int:
        return await start_child_workflow(middle, x) + 5

    @workflow(name="ch_root")
    async def root(x: int) -> int:
        return await start_child_workflow(upper, x)

    root_id = await start(root, 1, durable=True, storage=store)
    assert await get_workflow_result(root_id, storage=store) == 25
    (up,) = await store.get_children(root_id)
    (mid,) = await store.get_children(up.run_id)
    (lf,) = await store.get_children(mid.run_id)
    assert [r.nesting_depth for r in (up, mid, lf)] == [1, 2, 3]
    assert [r.workflow_name for r in (up, mid, lf)] == ["ch_upper", "ch_middle", "ch_leaf"]
    assert await store.get_nesting_depth(lf.run_id) == 3
    parent = await store.get_parent(lf.run_id)
    assert parent is not None and parent.run_id == mid.run_id


async def test_a_fourth_level_is_refused(store: StorageBackend) -> None:
    seen: list[tuple[str, str, str]] = []

    @workflow(name="ch_too_deep")
    async def too_deep() -> str:
        return "never"

    @workflow(name="ch_depth3")
    async def depth3() -> str:
        return await start_child_workflow(too_deep)

    @workflow(name="ch_depth2")
    async def depth2() -> str:
        try:
            return await start_child_workflow(depth3)
        except ChildWorkflowFailedError as error:
            seen.append((error.child_run_id, error.error_type, error.error))
            return "depth 3 failed"

    @workflow(name="ch_depth1")
    async def depth1() -> str:
        return await start_child_workflow(depth2)

    @workflow(name="ch_depth0")
    async def depth0() -> str:
        return await start_child_workflow(depth1)

    root_id = await start(depth0, durable=True, storage=store)
    assert await get_workflow_result(root_id, storage=store) == "depth 3 failed"
    (d1,) = await store.get_children(root_id)
    (d2,) = await store.get_children(d1.run_id)
    (d3,) = await store.get_children(d2.run_id)
    assert d3.nesting_depth == 3 and d3.status is RunStatus.FAILED
    assert await store.get_children(d3.run_id) == []  # the 4th level was never created
    assert "Maximum nesting depth of 3 exceeded" in (d3.error or "")
    (failed,) = await store.get_events(d3.run_id, ["workflow.failed"])
    assert failed.data["error_type"] == MaxNestingDepthError.__name__
    # Nothing was recorded for the refused child.
    assert "child_workflow.started" not in kinds(await store.get_events(d3.run_id))
    ((child_run_id, error_type, error),) = seen
    assert child_run_id == d3.run_id
    assert error_type == "MaxNestingDepthError"
    assert "Maximum nesting depth" in error


async def test_failing_child_raises_in_the_parent(store: StorageBackend) -> None:
    attempts = collections.Counter[str]()
    caught: list[ChildWorkflowFailedError] = []

    @step(max_retries=0)
    async def charge(amount: int) -> None:
        attempts["charge"] += 1
        raise ValueError(f"card declined for {amount}")

    @workflow(name="ch_payment")
    async def payment(amount: int) -> str:
        await charge(amount)
        return "paid"

    @workflow(name="ch_checkout")
    async def checkout(amount: int) -> str:
        try:
            return await start_child_workflow(payment, amount)
        except ChildWorkflowFailedError as error:
            caught.append(error)
            return "fallback"

    parent_id = await start(checkout, 30, durable=True, storage=store)
    assert await status_of(store, parent_id) is RunStatus.COMPLETED
    assert await get_workflow_result(parent_id, storage=store) == "fallback"
    assert attempts == {"charge": 1}  # max_retries=0: failed at once, no retry
    (kid,) = await store.get_children(parent_id)
    assert kid.status is RunStatus.FAILED
    error = caught[-1]
    assert error.child_run_id == kid.run_id
    assert error.child_workflow_name == "ch_payment"
    assert "card declined for 30" in error.error
    # The type the child failed with (a step out of attempts: RetryableError).
    (child_failed,) = await store.get_events(kid.run_id, ["workflow.failed"])
    assert error.error_type == child_failed.data["error_type"]
    assert str(error).startswith(f"Child workflow 'ch_payment' ({kid.run_id}) failed:")
    (outcome,) = await store.get_events(parent_id, ["child_workflow.failed"])
    assert outcome.data["child_run_id"] == kid.run_id
    assert "card declined" in outcome.data["error"]


async def test_uncaught_child_failure_fails_the_parent(store: StorageBackend) -> None:
    @workflow(name="ch_broken")
    async def broken() -> None:
        raise KeyError("missing")

    @workflow(name="ch_careless")
    async def careless() -> None:
        await start_child_workflow(broken)

    with pytest.raises(ChildWorkflowFailedError, match="ch_broken"):
        await start(careless, durable=True, storage=store)
    ((parent, *_), _) = await store.list_runs(query="ch_careless")
    assert parent.status is RunStatus.FAILED
    (failed,) = await store.get_events(parent.run_id, ["workflow.failed"])
    assert failed.data["error_type"] == "ChildWorkflowFailedError"


async def test_same_child_twice_gets_a_numbered_id(store: StorageBackend) -> None:
    ran = collections.Counter[str]()

    @workflow(name="ch_echo")
    async def echo(x: str) -> str:
        ran[x] += 1
        return x.upper()

    @workflow(name="ch_twice")
    async def twice() -> list[str]:
        first = await start_child_workflow(echo, "a")
        second = await start_child_workflow(echo, "a")
        other = await start_child_workflow(echo, "b")
        return [first, second, other]

    parent_id = await start(twice, durable=True, storage=store)
    assert await get_workflow_result(parent_id, storage=store) == ["A", "A", "B"]
    assert ran == {"a": 2, "b": 1}  # two separate runs, not one shared result
    starts = await store.get_events(parent_id, ["child_workflow.started"])
    ids = [e.data["child_id"] for e in starts]
    assert ids[1] == ids[0] + "_2"
    assert not ids[0].endswith("_2") and not ids[2].endswith("_2")
    assert ids[2] != ids[0]
    assert len({e.data["child_run_id"] for e in starts}) == 3


async def test_replay_does_not_start_children_twice(store: StorageBackend) -> None:
    ran = collections.Counter[str]()

    @step
    async def work(name: str) -> str:
        ran[name] += 1
        return name

    @workflow(name="ch_worker")
    async def worker(name: str) -> str:
        return await work(name)

    @workflow(name="ch_two_phases")
    async def two_phases() -> list[str]:
        ran["parent body"] += 1
        first = await start_child_workflow(worker, "first")
        await sleep(0.3)
        second = await start_child_workflow(worker, "second")
        return [first, second]

    timer_service(store)
    parent_id = await start(two_phases, durable=True, storage=store)
    assert await status_of(store, parent_id) is RunStatus.SUSPENDED
    # A premature resume replays the first child and suspends on the sleep again.
    assert await resume(parent_id, storage=store) is None
    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=10)
    assert result == ["first", "second"]
    assert ran["first"] == ran["second"] == 1
    assert ran["parent body"] >= 3
    children = await store.get_children(parent_id)
    assert sorted(c.run_id for c in children) == sorted(
        e.data["child_run_id"]
        for e in await store.get_events(parent_id, ["child_workflow.started"])
    )
    assert len(children) == 2


async def test_storage_queries_over_the_tree(store: StorageBackend) -> None:
    @workflow(name="ch_ok")
    async def ok(i: int) -> int:
        return i

    @workflow(name="ch_bad")
    async def bad() -> None:
        raise RuntimeError("bad child")

    @workflow(name="ch_mixed")
    async def mixed() -> list[int]:
        got = [await start_child_workflow(ok, 1), await start_child_workflow(ok, 2)]
        try:
            await start_child_workflow(bad)
        except ChildWorkflowFailedError:
            got.append(-1)
        return got

    parent_id = await start(mixed, durable=True, storage=store)
    assert await get_workflow_result(parent_id, storage=store) == [1, 2, -1]
    children = await store.get_children(parent_id)
    assert [c.workflow_name for c in children] == ["ch_ok", "ch_ok", "ch_bad"]
    completed = await store.get_children(parent_id, status=RunStatus.COMPLETED)
    assert {c.workflow_name for c in completed} == {"ch_ok"} and len(completed) == 2
    (failed,) = await store.get_children(parent_id, status=RunStatus.FAILED)
    assert failed.workflow_name == "ch_bad"
    assert await store.get_children(parent_id, status=RunStatus.SUSPENDED) == []
    assert await store.get_children(failed.run_id) == []
    assert await store.get_parent(parent_id) is None
    assert await store.get_parent("run_unknown") is None
    for child in children:
        parent = await store.get_parent(child.run_id)
        assert parent is not None and parent.run_id == parent_id
        assert await store.get_nesting_depth(child.run_id) == 1
    assert await store.get_nesting_depth(parent_id) == 0
    assert await store.get_nesting_depth("run_unknown") == 0
