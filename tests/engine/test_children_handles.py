"""Fire-and-forget children and their handles, the close policy, cancellation across
the tree, and misuse of ``start_child_workflow`` — on every backend."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from pyworkflow import (
    CancellationError,
    ChildWorkflowFailedError,
    ChildWorkflowHandle,
    RunStatus,
    cancel_workflow,
    get_workflow_result,
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


async def test_handle_result_inside_the_parent_waits_durably(store: StorageBackend) -> None:
    handles: list[ChildWorkflowHandle] = []
    ran = collections.Counter[str]()

    @step
    async def pack(item: str) -> str:
        ran["pack"] += 1
        return f"packed {item}"

    @workflow(name="chh_packer")
    async def packer(item: str) -> str:
        return await pack(item)

    @workflow(name="chh_dispatcher")
    async def dispatcher(item: str) -> str:
        handle = await start_child_workflow(packer, item, wait_for_completion=False)
        handles.append(handle)
        return await handle.result(timeout=5)

    parent_id = await start(dispatcher, "box", durable=True, storage=store)
    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=10)
    assert result == "packed box"
    assert ran == {"pack": 1}

    handle = handles[-1]
    assert isinstance(handle, ChildWorkflowHandle)
    (kid,) = await store.get_children(parent_id)
    assert handle.child_run_id == kid.run_id
    assert handle.parent_run_id == parent_id
    assert handle.child_workflow_name == "chh_packer"
    assert handle.child_id.startswith("child_chh_packer_")
    assert repr(handle) == (
        f"ChildWorkflowHandle(child_id={handle.child_id!r}, "
        f"child_run_id={kid.run_id!r}, child_workflow_name='chh_packer')"
    )
    # Every activation of the parent handed out the same handle.
    assert {(h.child_id, h.child_run_id) for h in handles} == {(handle.child_id, kid.run_id)}

    # From outside, after the parent is done.
    assert await handle.get_status() is RunStatus.COMPLETED
    assert await handle.is_terminal() is True
    assert await handle.is_running() is False
    assert await handle.result(timeout=1) == "packed box"
    assert await handle.cancel("too late") is False

    events = await store.get_events(parent_id)
    (started,) = [e for e in events if e.type.value == "child_workflow.started"]
    assert started.data["wait_for_completion"] is False
    assert kinds(events).count("child_workflow.completed") == 1
    assert kinds(events)[-1] == "workflow.completed"


async def test_unfinished_child_is_cancelled_when_its_parent_completes(
    store: StorageBackend,
) -> None:
    handles: list[ChildWorkflowHandle] = []
    undo = collections.Counter[str]()

    @step
    async def rollback() -> None:
        undo["rollback"] += 1

    @workflow(name="chh_long_child")
    async def long_child() -> str:
        try:
            await sleep("1h")
        except CancellationError:
            async with shield():
                await rollback()
            raise
        return "finished"

    @workflow(name="chh_quick_parent")
    async def quick_parent() -> str:
        handles.append(await start_child_workflow(long_child, wait_for_completion=False))
        return "parent done"

    parent_id = await start(quick_parent, durable=True, storage=store)
    assert await has_status(store, parent_id, RunStatus.COMPLETED)
    assert await get_workflow_result(parent_id, storage=store) == "parent done"
    handle = handles[-1]
    await eventually(
        lambda: has_status(store, handle.child_run_id, RunStatus.CANCELLED),
        timeout=10,
        message="the parent's unfinished child was never cancelled",
    )
    child_events = await store.get_events(handle.child_run_id)
    assert await cancel_reasons(store, handle.child_run_id) == {
        f"Parent workflow {parent_id} completed"
    }
    assert kinds(child_events)[-1] == "workflow.cancelled"
    assert undo == {"rollback": 1}

    # The parent's log learns how its child ended, after its own completion.
    parent_events = await eventually(
        lambda: _events_with(store, parent_id, "child_workflow.cancelled"), timeout=10
    )
    types = kinds(parent_events)
    assert types.index("workflow.completed") < types.index("child_workflow.cancelled")
    assert types.count("child_workflow.cancelled") == 1
    # The parent stays COMPLETED with its result.
    assert await get_workflow_result(parent_id, storage=store) == "parent done"

    assert await handle.is_terminal() is True
    assert await handle.is_running() is False
    with pytest.raises(ChildWorkflowFailedError) as caught:
        await handle.result(timeout=1)
    assert "cancelled" in caught.value.error
    assert caught.value.child_run_id == handle.child_run_id
    await eventually(lambda: _no_timers(store, parent_id, handle.child_run_id), timeout=10)


async def test_handle_of_a_running_child_from_outside(store: StorageBackend) -> None:
    handles: list[ChildWorkflowHandle] = []

    @workflow(name="chh_idle_child")
    async def idle_child() -> str:
        await sleep("1h")
        return "idle done"

    @workflow(name="chh_idle_parent")
    async def idle_parent() -> str:
        handles.append(await start_child_workflow(idle_child, wait_for_completion=False))
        await sleep("1h")
        return "parent woke"

    timer_service(store)
    parent_id = await start(idle_parent, durable=True, storage=store)
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    handle = handles[-1]
    await eventually(
        lambda: has_status(store, handle.child_run_id, RunStatus.SUSPENDED), timeout=10
    )
    assert await handle.get_status() is RunStatus.SUSPENDED
    assert await handle.is_running() is True
    assert await handle.is_terminal() is False
    with pytest.raises(TimeoutError):
        await handle.result(timeout=0.2)

    assert await handle.cancel("not needed") is True
    await eventually(
        lambda: has_status(store, handle.child_run_id, RunStatus.CANCELLED), timeout=10
    )
    await eventually(lambda: _events_with(store, parent_id, "child_workflow.cancelled"), timeout=10)
    (outcome,) = await store.get_events(parent_id, ["child_workflow.cancelled"])
    assert outcome.data["child_run_id"] == handle.child_run_id
    # The parent was woken by the news, saw its own sleep still due, and sleeps on.
    await eventually(lambda: has_status(store, parent_id, RunStatus.SUSPENDED), timeout=10)
    with pytest.raises(ChildWorkflowFailedError, match="cancelled"):
        await handle.result(timeout=1)


async def test_handle_of_a_missing_run(store: StorageBackend) -> None:
    handle = ChildWorkflowHandle("child_x_1", "run_missing", "x", "run_parent", store)
    with pytest.raises(ValueError, match="not found"):
        await handle.get_status()
    with pytest.raises(ValueError, match="not found"):
        await handle.is_running()
    with pytest.raises(ValueError, match="not found"):
        await handle.result(timeout=0.1)


async def test_cancelling_a_parent_cancels_the_child_it_waits_for(store: StorageBackend) -> None:
    undo = collections.Counter[str]()
    handles: list[str] = []

    @step
    async def reserve() -> str:
        undo["reserve"] += 1
        return "room 7"

    @step
    async def release(room: str) -> None:
        undo[f"release {room}"] += 1

    @workflow(name="chh_booking")
    async def booking() -> str:
        room = await reserve()
        try:
            await sleep("1h")
        except CancellationError:
            async with shield():
                await release(room)
            raise
        return room

    @workflow(name="chh_trip")
    async def trip() -> str:
        return await start_child_workflow(booking)

    parent_id = await start(trip, durable=True, storage=store)
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    (kid,) = await store.get_children(parent_id)
    handles.append(kid.run_id)
    assert kid.status is RunStatus.SUSPENDED

    assert await cancel_workflow(parent_id, reason="trip off", storage=store) is True
    await eventually(lambda: has_status(store, parent_id, RunStatus.CANCELLED), timeout=10)
    await eventually(lambda: has_status(store, kid.run_id, RunStatus.CANCELLED), timeout=10)
    assert undo == {"reserve": 1, "release room 7": 1}
    assert await cancel_reasons(store, kid.run_id) == {f"Parent workflow {parent_id} cancelled"}
    await eventually(lambda: _events_with(store, parent_id, "child_workflow.cancelled"), timeout=10)
    with pytest.raises(CancellationError):
        await get_workflow_result(parent_id, storage=store)
    await eventually(lambda: _no_timers(store, parent_id, kid.run_id), timeout=10)


async def test_cancelled_child_raises_in_its_waiting_parent(store: StorageBackend) -> None:
    caught: list[ChildWorkflowFailedError] = []

    @workflow(name="chh_sleepy")
    async def sleepy() -> str:
        await sleep("1h")
        return "woke"

    @workflow(name="chh_patient")
    async def patient() -> str:
        try:
            return await start_child_workflow(sleepy)
        except ChildWorkflowFailedError as error:
            caught.append(error)
            return "gave up"

    parent_id = await start(patient, durable=True, storage=store)
    (kid,) = await store.get_children(parent_id)
    assert await cancel_workflow(kid.run_id, reason="operator", storage=store) is True
    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=10)
    assert result == "gave up"
    error = caught[-1]
    assert error.child_run_id == kid.run_id
    assert error.error.startswith("Cancelled: ")
    assert error.error_type == "CancellationError"


async def test_cancel_reason_reaches_the_parent(store: StorageBackend) -> None:
    """API.md §7.5: a cancelled child gives "Cancelled: <reason>" — the reason the
    child was cancelled with, not a generic text."""
    caught: list[ChildWorkflowFailedError] = []

    @workflow(name="chh_sleepy_reason")
    async def sleepy() -> str:
        await sleep("1h")
        return "woke"

    @workflow(name="chh_patient_reason")
    async def patient() -> str:
        try:
            return await start_child_workflow(sleepy)
        except ChildWorkflowFailedError as error:
            caught.append(error)
            return "gave up"

    parent_id = await start(patient, durable=True, storage=store)
    (kid,) = await store.get_children(parent_id)
    assert await cancel_workflow(kid.run_id, reason="operator", storage=store) is True
    assert await get_workflow_result(parent_id, storage=store, wait=True, timeout=10) == "gave up"
    (cancelled,) = await store.get_events(kid.run_id, ["workflow.cancelled"])
    assert cancelled.data["reason"] == "operator"
    (outcome,) = await store.get_events(parent_id, ["child_workflow.cancelled"])
    assert outcome.data["reason"] == "operator"
    assert caught[-1].error == "Cancelled: operator"


async def test_outside_a_workflow_is_an_error() -> None:
    @workflow(name="chh_lonely")
    async def lonely() -> None:
        return None

    with pytest.raises(RuntimeError, match="workflow context"):
        await start_child_workflow(lonely)


async def test_unregistered_child_fails_the_parent(store: StorageBackend) -> None:
    async def not_a_workflow() -> str:
        return "plain"

    @workflow(name="chh_misuse")
    async def misuse() -> str:
        return await start_child_workflow(not_a_workflow)

    with pytest.raises(ValueError, match="not registered"):
        await start(misuse, durable=True, storage=store)
    ((run,), _) = await store.list_runs(query="chh_misuse")
    assert run.status is RunStatus.FAILED
    assert "not registered" in (run.error or "")
    assert await store.get_children(run.run_id) == []
    assert "child_workflow.started" not in kinds(await store.get_events(run.run_id))


async def test_transient_parent_cannot_start_children() -> None:
    @workflow(name="chh_kid")
    async def kid() -> int:
        return 1

    @workflow(name="chh_transient")
    async def transient() -> int:
        return await start_child_workflow(kid)

    with pytest.raises(RuntimeError, match="durable"):
        await start(transient, durable=False)


async def _events_with(store: StorageBackend, run_id: str, kind: str) -> list[Any]:
    events = await store.get_events(run_id)
    return events if kind in kinds(events) else []


async def _no_timers(store: StorageBackend, *run_ids: str) -> bool:
    for run_id in run_ids:
        if await store.list_timers(run_id):
            return False
    return True
