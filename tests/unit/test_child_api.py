"""Child-workflow and continue-as-new API without a runtime: handles, limits, the
control-flow signal, ``continue_as_new`` under MockContext, and LocalContext's child
views rebuilt from an event log (API.md §1.4, §1.5, §7.5, §8.5, §8.6)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from pyworkflow import (
    CancellationError,
    ChildWorkflowFailedError,
    ChildWorkflowHandle,
    MaxNestingDepthError,
    RunStatus,
    continue_as_new,
    shield,
    start_child_workflow,
    workflow,
)
from pyworkflow.context import MockContext
from pyworkflow.context.local import LocalContext
from pyworkflow.core.exceptions import ChildWorkflowError, ContinueAsNewSignal, WorkflowError
from pyworkflow.engine import events as ev
from pyworkflow.engine.children import child_base_id
from pyworkflow.primitives.child_workflow import MAX_NESTING_DEPTH
from pyworkflow.serialization.encoder import serialize
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import WorkflowRun

# ---------------------------------------------------------------------- handle


def test_handle_attributes_and_repr() -> None:
    store = InMemoryStorageBackend()
    handle = ChildWorkflowHandle("child_ship_abc", "run_2", "ship", "run_1", store)
    assert handle.child_id == "child_ship_abc"
    assert handle.child_run_id == "run_2"
    assert handle.child_workflow_name == "ship"
    assert handle.parent_run_id == "run_1"
    assert handle._storage is store
    assert repr(handle) == (
        "ChildWorkflowHandle(child_id='child_ship_abc', child_run_id='run_2', "
        "child_workflow_name='ship')"
    )
    assert [f.name for f in dataclasses.fields(handle)] == [
        "child_id",
        "child_run_id",
        "child_workflow_name",
        "parent_run_id",
        "_storage",
    ]


async def _handle_for(status: RunStatus, **fields: str | None) -> ChildWorkflowHandle:
    store = InMemoryStorageBackend()
    await store.connect()
    await store.create_run(WorkflowRun("run_c", "charge", status, parent_run_id="run_p", **fields))  # type: ignore[arg-type]
    return ChildWorkflowHandle("child_charge_1", "run_c", "charge", "run_p", store)


async def test_handle_reads_a_stored_result() -> None:
    handle = await _handle_for(RunStatus.COMPLETED, result='{"status": "paid"}')
    assert await handle.get_status() is RunStatus.COMPLETED
    assert await handle.is_terminal() is True and await handle.is_running() is False
    assert await handle.result() == {"status": "paid"}


async def test_handle_of_a_failed_or_cancelled_child() -> None:
    failed = await _handle_for(RunStatus.FAILED, error="out of stock")
    with pytest.raises(ChildWorkflowFailedError) as caught:
        await failed.result()
    assert caught.value.error == "out of stock"
    assert caught.value.child_run_id == "run_c"
    assert caught.value.error_type == "Unknown"
    cancelled = await _handle_for(RunStatus.CANCELLED)
    with pytest.raises(ChildWorkflowFailedError) as caught:
        await cancelled.result()
    assert "cancelled" in caught.value.error


@pytest.mark.parametrize(
    ("status", "running", "terminal"),
    [
        (RunStatus.PENDING, True, False),
        (RunStatus.RUNNING, True, False),
        (RunStatus.SUSPENDED, True, False),
        (RunStatus.COMPLETED, False, True),
        (RunStatus.FAILED, False, True),
        (RunStatus.CANCELLED, False, True),
    ],
)
async def test_handle_running_and_terminal(
    status: RunStatus, running: bool, terminal: bool
) -> None:
    handle = await _handle_for(status)
    assert await handle.is_running() is running
    assert await handle.is_terminal() is terminal


async def test_handle_result_times_out() -> None:
    handle = await _handle_for(RunStatus.SUSPENDED)
    with pytest.raises(TimeoutError):
        await handle.result(timeout=0.05)


async def test_handle_of_a_missing_run() -> None:
    handle = ChildWorkflowHandle("c", "run_gone", "x", "run_p", InMemoryStorageBackend())
    with pytest.raises(ValueError, match="not found"):
        await handle.get_status()


# ---------------------------------------------------------------------- limits, errors, ids


def test_nesting_limit() -> None:
    assert MAX_NESTING_DEPTH == 3
    assert MaxNestingDepthError.MAX_DEPTH == 3
    err = MaxNestingDepthError(3)
    assert err.current_depth == 3 and err.max_depth == 3
    assert str(err).startswith("Maximum nesting depth of 3 exceeded. Current depth: 3.")
    assert isinstance(err, ChildWorkflowError) and isinstance(err, WorkflowError)


def test_child_failed_error() -> None:
    err = ChildWorkflowFailedError("run_2", "ship", "no stock", "ValueError")
    assert str(err) == "Child workflow 'ship' (run_2) failed: no stock"
    assert (err.child_run_id, err.child_workflow_name, err.error, err.error_type) == (
        "run_2",
        "ship",
        "no stock",
        "ValueError",
    )
    assert isinstance(err, ChildWorkflowError)


def test_child_id_is_upstreams_hash() -> None:
    digest = hashlib.sha256(b'child:ship:["a", 1]:{"fast": true}').hexdigest()[:16]
    assert child_base_id("ship", '["a", 1]', '{"fast": true}') == f"child_ship_{digest}"
    assert child_base_id("ship", "[1]", "{}") != child_base_id("ship", "[2]", "{}")


async def test_start_child_workflow_needs_a_durable_context() -> None:
    @workflow(name="unit_child")
    async def child() -> int:
        return 1

    with pytest.raises(RuntimeError, match="workflow context"):
        await start_child_workflow(child)
    with MockContext(), pytest.raises(RuntimeError, match="durable"):
        await start_child_workflow(child)
    with LocalContext(durable=False), pytest.raises(RuntimeError, match="durable"):
        await start_child_workflow(child)


# ---------------------------------------------------------------------- continue-as-new


def test_continue_as_new_signal() -> None:
    signal = ContinueAsNewSignal()
    assert str(signal) == "Workflow continuing as new execution"
    assert signal.workflow_args == () and signal.workflow_kwargs == {}
    assert ContinueAsNewSignal((1, 2), None).workflow_kwargs == {}
    carried = ContinueAsNewSignal((1, "a"), {"k": [1]})
    assert carried.workflow_args == (1, "a") and carried.workflow_kwargs == {"k": [1]}
    # user code's ``except Exception`` cannot swallow it
    assert not isinstance(signal, Exception) and isinstance(signal, BaseException)


def test_continue_as_new_outside_a_context() -> None:
    with pytest.raises(RuntimeError, match="must be called within a workflow context"):
        continue_as_new(1)


def test_continue_as_new_under_mock_context() -> None:
    nested = {"a": [1, {"b": (2, 3)}], "c": None}
    with MockContext():
        with pytest.raises(ContinueAsNewSignal) as caught:
            continue_as_new("x", 2, cursor=nested)
        assert caught.value.workflow_args == ("x", 2)
        assert caught.value.workflow_kwargs == {"cursor": nested}
        with pytest.raises(ContinueAsNewSignal) as only_kw:
            continue_as_new(page=3)
        assert only_kw.value.workflow_args == () and only_kw.value.workflow_kwargs == {"page": 3}
        with pytest.raises(ValueError, match="requires at least one argument"):
            continue_as_new()


async def test_continue_as_new_checks_cancellation_first() -> None:
    ctx = MockContext()
    ctx.request_cancellation("user asked")
    with ctx:
        with pytest.raises(CancellationError) as caught:
            continue_as_new(1)
        assert caught.value.reason == "user asked"
        async with shield():
            with pytest.raises(ContinueAsNewSignal):
                continue_as_new(1)
    local = LocalContext(durable=False)
    local.request_cancellation("stop")
    with local, pytest.raises(CancellationError, match="Workflow was cancelled: stop"):
        continue_as_new(1)


# ---------------------------------------------------------------------- LocalContext views


def _log() -> list[ev.Event]:
    events = [
        ev.create_workflow_started_event("run_p", "parent", "[]", "{}"),
        ev.create_child_workflow_started_event(
            "run_p", "child_ok", "run_1", "ok", "[]", "{}", True
        ),
        ev.create_child_workflow_started_event(
            "run_p", "child_pending", "run_2", "slow", "[]", "{}", False
        ),
        ev.create_child_workflow_started_event(
            "run_p", "child_bad", "run_3", "bad", "[]", "{}", True
        ),
        ev.create_child_workflow_started_event(
            "run_p", "child_gone", "run_4", "gone", "[]", "{}", True
        ),
        ev.create_child_workflow_completed_event(
            "run_p", "child_ok", "run_1", serialize({"status": "paid", "n": (1, 2)})
        ),
        ev.create_child_workflow_failed_event("run_p", "child_bad", "run_3", "boom", "ValueError"),
        ev.create_child_workflow_cancelled_event(
            "run_p", "child_gone", "run_4", "Parent workflow run_p completed"
        ),
    ]
    for sequence, event in enumerate(events):
        event.sequence = sequence
    return events


def test_child_views_from_an_event_log() -> None:
    ctx = LocalContext("run_p", "parent", InMemoryStorageBackend(), event_log=_log())
    assert ctx.pending_children == {"child_pending": "run_2"}
    assert ctx.child_results == {
        "child_ok": {
            "child_run_id": "run_1",
            "result": {"status": "paid", "n": (1, 2)},
            "__failed__": False,
        },
        "child_bad": {
            "child_run_id": "run_3",
            "error": "boom",
            "error_type": "ValueError",
            "__failed__": True,
        },
        "child_gone": {
            "child_run_id": "run_4",
            "error": "Cancelled: Parent workflow run_p completed",
            "error_type": "CancellationError",
            "__failed__": True,
        },
    }
    assert ctx.has_child_result("child_ok") and ctx.has_child_result("child_gone")
    assert not ctx.has_child_result("child_pending")
    assert ctx.get_child_result("child_bad")["__failed__"] is True
    with pytest.raises(KeyError):
        ctx.get_child_result("child_pending")
    assert ctx.is_replaying is False


def test_child_views_from_shuffled_events() -> None:
    shuffled = list(reversed(_log()))
    ctx = LocalContext("run_p", "parent", InMemoryStorageBackend(), event_log=shuffled)
    assert ctx.pending_children == {"child_pending": "run_2"}
    assert set(ctx.child_results) == {"child_ok", "child_bad", "child_gone"}


def test_cache_child_result_and_add_pending_child() -> None:
    ctx = LocalContext("run_p", "parent", InMemoryStorageBackend())
    assert ctx.pending_children == {} and ctx.child_results == {}
    ctx.add_pending_child("child_a", "run_a")
    ctx.add_pending_child("child_b", "run_b")
    assert ctx._pending_children == {"child_a": "run_a", "child_b": "run_b"}
    assert ctx.pending_children == {"child_a": "run_a", "child_b": "run_b"}

    ctx.cache_child_result("child_a", "run_a", {"v": 1})
    assert ctx.has_child_result("child_a")
    assert ctx.get_child_result("child_a") == {
        "child_run_id": "run_a",
        "result": {"v": 1},
        "__failed__": False,
    }
    assert ctx.pending_children == {"child_b": "run_b"}

    ctx.cache_child_result(
        "child_b", "run_b", None, failed=True, error="declined", error_type="PaymentError"
    )
    assert ctx.get_child_result("child_b") == {
        "child_run_id": "run_b",
        "error": "declined",
        "error_type": "PaymentError",
        "__failed__": True,
    }
    assert ctx.pending_children == {}
    assert ctx._pending_children == {}


def test_transient_context_child_views() -> None:
    ctx = LocalContext(durable=False)
    ctx.add_pending_child("c", "run_c")
    assert ctx.pending_children == {"c": "run_c"}
    ctx.cache_child_result("c", "run_c", 5)
    assert ctx.get_child_result("c")["result"] == 5
