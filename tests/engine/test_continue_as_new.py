"""Continue-as-new on every backend: chains, carried arguments, misuse, a 10,000
iteration loop kept in bounded runs, children that continue, cancellation in the
middle of a chain and a crash between a run's end and its continuation."""

from __future__ import annotations

import asyncio
import collections
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from pyworkflow import (
    CancellationError,
    ChildWorkflowHandle,
    RunStatus,
    cancel_workflow,
    continue_as_new,
    get_workflow_chain,
    get_workflow_result,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
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


async def test_chain_of_three(store: StorageBackend) -> None:
    ran = collections.Counter[int]()

    @step
    async def visit(n: int) -> int:
        ran[n] += 1
        return n

    @workflow(name="can_counter")
    async def counter(n: int, limit: int) -> str:
        await visit(n)
        if n < limit:
            continue_as_new(n + 1, limit=limit)
        return f"stopped at {n}"

    first_id = await start(counter, 1, 3, durable=True, storage=store)
    chain = await get_workflow_chain(first_id, storage=store)
    assert [r.status for r in chain] == [
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.COMPLETED,
    ]
    assert chain[0].run_id == first_id  # start() returned the first run
    ids = [r.run_id for r in chain]
    assert len(set(ids)) == 3 and all(i.startswith("run_") for i in ids)
    for member in ids:
        assert [r.run_id for r in await get_workflow_chain(member, storage=store)] == ids
    assert await get_workflow_chain("run_unknown", storage=store) == []

    assert chain[0].continued_from_run_id is None
    assert [r.continued_from_run_id for r in chain[1:]] == ids[:2]
    assert [r.continued_to_run_id for r in chain] == [ids[1], ids[2], None]
    assert {r.workflow_name for r in chain} == {"can_counter"}
    assert {r.parent_run_id for r in chain} == {None}
    assert {r.nesting_depth for r in chain} == {0}
    assert all(r.completed_at is not None for r in chain)

    assert await get_workflow_result(first_id, storage=store) == "stopped at 3"
    assert await get_workflow_result(ids[1], storage=store) == "stopped at 3"
    assert ran == {1: 1, 2: 1, 3: 1}

    first_events = await store.get_events(first_id)
    assert kinds(first_events) == [
        "workflow.started",
        "step.started",
        "step.completed",
        "workflow.continued_as_new",
    ]
    moved = first_events[-1].data
    assert moved["new_run_id"] == ids[1]
    assert moved["args"] == serialize_args(2)
    assert moved["kwargs"] == serialize_kwargs(limit=3)
    assert moved["continued_at"]
    # Each run starts with a fresh log of its own.
    assert kinds(await store.get_events(ids[2])) == [
        "workflow.started",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    for run_id in ids:
        assert await store.list_timers(run_id) == []


async def test_arguments_are_carried_as_they_are(store: StorageBackend) -> None:
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    nested = {
        "items": [1, 2.5, "drei", None, True, {"deep": [(1, 2), {"x": []}]}],
        "pair": ("a", 1),
        "when": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "unicode": "grüße ✓",
    }

    @workflow(name="can_carrier")
    async def carrier(*args: Any, **kwargs: Any) -> Any:
        seen.append((args, kwargs))
        if len(seen) == 1:
            continue_as_new("positional", 2)
        if len(seen) == 2:
            continue_as_new(cursor=7, label="kw")
        if len(seen) == 3:
            continue_as_new(nested, [nested], mode="mixed", payload=nested)
        return {"args": list(args), "kwargs": kwargs}

    first_id = await start(carrier, "start", durable=True, storage=store)
    assert [a for a, _ in seen[1:]] == [("positional", 2), (), (nested, [nested])]
    assert [k for _, k in seen[1:]] == [
        {},
        {"cursor": 7, "label": "kw"},
        {
            "mode": "mixed",
            "payload": nested,
        },
    ]
    # Tuples stay tuples, datetimes stay datetimes.
    args, kwargs = seen[-1]
    assert isinstance(args[0]["pair"], tuple)
    assert isinstance(kwargs["payload"]["items"][5]["deep"][0], tuple)
    assert kwargs["payload"]["when"] == nested["when"]
    result = await get_workflow_result(first_id, storage=store)
    assert result["kwargs"]["payload"] == nested
    chain = await get_workflow_chain(first_id, storage=store)
    assert len(chain) == 4
    assert chain[3].input_args == serialize_args(nested, [nested])


async def test_continue_as_new_without_arguments_fails_the_run(store: StorageBackend) -> None:
    @workflow(name="can_empty")
    async def empty() -> None:
        continue_as_new()

    with pytest.raises(ValueError, match="requires at least one argument"):
        await start(empty, durable=True, storage=store)
    ((run,), _) = await store.list_runs(query="can_empty")
    assert run.status is RunStatus.FAILED
    assert run.continued_to_run_id is None
    assert len(await get_workflow_chain(run.run_id, storage=store)) == 1


async def test_continue_as_new_outside_a_workflow() -> None:
    with pytest.raises(RuntimeError, match="workflow context"):
        continue_as_new(1)


async def test_cancellation_requested_wins_over_continue_as_new(store: StorageBackend) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    @step
    async def slow_batch() -> int:
        entered.set()
        await gate.wait()
        return 1

    @workflow(name="can_cancelled")
    async def cancelled(n: int) -> int:
        await slow_batch()
        continue_as_new(n + 1)

    task = asyncio.create_task(start(cancelled, 0, durable=True, storage=store))
    await asyncio.wait_for(entered.wait(), 10)
    ((run,), _) = await store.list_runs(query="can_cancelled")
    assert await cancel_workflow(run.run_id, reason="enough", storage=store) is True
    gate.set()
    assert await asyncio.wait_for(task, 10) == run.run_id
    assert await has_status(store, run.run_id, RunStatus.CANCELLED)
    assert "workflow.continued_as_new" not in kinds(await store.get_events(run.run_id))
    assert len((await store.list_runs(query="can_cancelled"))[0]) == 1
    after = await store.get_run(run.run_id)
    assert after is not None and after.continued_to_run_id is None


async def test_unserializable_arguments_fail_the_run(store: StorageBackend) -> None:
    @workflow(name="can_lock")
    async def with_lock() -> None:
        continue_as_new(threading.Lock())

    with pytest.raises(Exception, match="Cannot serialize object of type lock"):
        await start(with_lock, durable=True, storage=store)
    ((run,), _) = await store.list_runs(query="can_lock")
    assert run.status is RunStatus.FAILED
    assert "Cannot serialize object of type lock" in (run.error or "")
    assert run.continued_to_run_id is None
    (failed,) = await store.get_events(run.run_id, ["workflow.failed"])
    assert failed.data["error_type"] == "SerializationError"
    assert "workflow.continued_as_new" not in kinds(await store.get_events(run.run_id))
    assert await store.list_timers(run.run_id) == []


async def test_cancelling_the_current_run_of_a_chain(store: StorageBackend) -> None:
    @workflow(name="can_napper")
    async def napper(n: int) -> int:
        if n == 2:
            await sleep("1h")
        if n < 3:
            continue_as_new(n + 1)
        return n

    first_id = await start(napper, 1, durable=True, storage=store)
    chain = await get_workflow_chain(first_id, storage=store)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.SUSPENDED]
    current = chain[1].run_id
    # The ended member of the chain is terminal for cancel_workflow.
    assert await cancel_workflow(first_id, reason="stop", storage=store) is False
    assert "cancellation.requested" not in kinds(await store.get_events(first_id))
    assert await cancel_workflow(current, reason="stop", storage=store) is True
    assert await has_status(store, current, RunStatus.CANCELLED)
    chain = await get_workflow_chain(first_id, storage=store)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.CANCELLED]
    with pytest.raises(CancellationError):
        await get_workflow_result(first_id, storage=store)
    assert await store.list_timers(current) == []


async def test_list_runs_by_continued_as_new(store: StorageBackend) -> None:
    @workflow(name="can_listed")
    async def listed(n: int) -> int:
        if n < 3:
            continue_as_new(n + 1)
        return n

    @workflow(name="can_plain")
    async def plain() -> int:
        return 0

    first_id = await start(listed, 1, durable=True, storage=store)
    await start(plain, durable=True, storage=store)
    chain = await get_workflow_chain(first_id, storage=store)
    moved, _ = await store.list_runs(status=RunStatus.CONTINUED_AS_NEW)
    assert sorted(r.run_id for r in moved) == sorted(r.run_id for r in chain[:2])
    done, _ = await store.list_runs(status=RunStatus.COMPLETED)
    assert {r.workflow_name for r in done} == {"can_listed", "can_plain"}
    assert chain[2].run_id in {r.run_id for r in done}


async def test_child_that_continues_as_new(store: StorageBackend) -> None:
    @workflow(name="can_child_pages")
    async def pages(page: int, total: int) -> int:
        total += page
        if page < 3:
            continue_as_new(page + 1, total)
        return total

    @workflow(name="can_child_reader")
    async def reader() -> int:
        return await start_child_workflow(pages, 1, 0)

    parent_id = await start(reader, durable=True, storage=store)
    assert await get_workflow_result(parent_id, storage=store, wait=True, timeout=10) == 6
    starts = await store.get_events(parent_id, ["child_workflow.started"])
    (outcome,) = await store.get_events(parent_id, ["child_workflow.completed"])
    assert len(starts) == 1
    root_id = starts[0].data["child_run_id"]
    assert outcome.data["child_run_id"] == root_id
    chain = await get_workflow_chain(root_id, storage=store)
    assert [r.status for r in chain] == [
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.COMPLETED,
    ]
    # Every run of the child's chain belongs to the parent, at depth 1.
    assert {r.parent_run_id for r in chain} == {parent_id}
    assert {r.nesting_depth for r in chain} == {1}
    assert sorted(r.run_id for r in await store.get_children(parent_id)) == sorted(
        r.run_id for r in chain
    )


async def test_handle_of_a_child_that_continues_as_new(store: StorageBackend) -> None:
    handles: list[ChildWorkflowHandle] = []

    @workflow(name="can_bg_pages")
    async def pages(page: int) -> str:
        if page < 3:
            continue_as_new(page + 1)
        return f"page {page}"

    @workflow(name="can_bg_reader")
    async def reader() -> str:
        handle = await start_child_workflow(pages, 1, wait_for_completion=False)
        handles.append(handle)
        return await handle.result()

    parent_id = await start(reader, durable=True, storage=store)
    assert await get_workflow_result(parent_id, storage=store, wait=True, timeout=10) == "page 3"
    handle = handles[-1]
    # The handle follows its child's chain to the last run.
    assert await handle.get_status() is RunStatus.COMPLETED
    assert await handle.is_terminal() is True
    assert await handle.result(timeout=1) == "page 3"


async def test_continue_as_new_cancels_unfinished_children(store: StorageBackend) -> None:
    @workflow(name="can_bg_sleeper")
    async def sleeper() -> None:
        await sleep("1h")

    @workflow(name="can_spawner")
    async def spawner(n: int) -> int:
        if n == 1:
            await start_child_workflow(sleeper, wait_for_completion=False)
            continue_as_new(n + 1)
        return n

    first_id = await start(spawner, 1, durable=True, storage=store)
    assert await get_workflow_result(first_id, storage=store, wait=True, timeout=10) == 2
    (kid,) = await store.get_children(first_id)
    await eventually(lambda: has_status(store, kid.run_id, RunStatus.CANCELLED), timeout=10)
    reasons = await cancel_reasons(store, kid.run_id)
    assert reasons == {f"Parent workflow {first_id} continued_as_new"}


async def test_cancelling_a_parent_reaches_the_current_run_of_its_childs_chain(
    store: StorageBackend,
) -> None:
    @workflow(name="can_chain_child")
    async def chain_child(n: int) -> int:
        if n < 2:
            continue_as_new(n + 1)
        await sleep("1h")
        return n

    @workflow(name="can_chain_parent")
    async def chain_parent() -> int:
        return await start_child_workflow(chain_child, 1)

    parent_id = await start(chain_parent, durable=True, storage=store)
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    (started,) = await store.get_events(parent_id, ["child_workflow.started"])
    chain = await get_workflow_chain(started.data["child_run_id"], storage=store)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.SUSPENDED]

    assert await cancel_workflow(parent_id, reason="stop all", storage=store) is True
    await eventually(lambda: has_status(store, chain[1].run_id, RunStatus.CANCELLED), timeout=10)
    assert await has_status(store, parent_id, RunStatus.CANCELLED)
    (outcome,) = await eventually(
        lambda: store.get_events(parent_id, ["child_workflow.cancelled"]), timeout=10
    )
    # The parent knows its child by the chain's first run id.
    assert outcome.data["child_run_id"] == chain[0].run_id
