"""Workflows for the Celery child-workflow and continue-as-new tests, run by real
workers (``PYWORKFLOW_DISCOVER`` includes ``tests.celery.child_flows``).

Every name starts with ``celery_`` (the test process imports this module too, and its
registrations stay for the session). Step bodies log each run to
``$PYWORKFLOW_TEST_DIR/events.log`` with :func:`tests.celery.flows.note` (pid, start and
end), so "ran once", "ran in parallel" and "ran on which process" are measured across
processes. A workflow told to ``hang_at`` a position announces its first activation
there (pid in ``<tag>.hanging``) and blocks its workflow worker until it is killed.

The modules that kill a workflow worker between a run's end and its follow-ups set
``PYWORKFLOW_FOLLOWUP_DELAY_SECONDS`` small in their cluster (the ``followup`` timer,
30 s by default), so they finish in seconds. The workflows named in ``CRASH_AFTER_END``
crash their workflow worker there (``os._exit``, as a SIGKILL would) the first time
one of their runs ends for a tag: the run's end is committed, its follow-ups (start
the next run of the chain, tell the parent) are not done, and only its ``followup``
timer can do them. That hook is installed only where ``PYWORKFLOW_TEST_CRASH_AFTER_END``
is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from pyworkflow import (
    CancellationError,
    ChildWorkflowFailedError,
    continue_as_new,
    shield,
    sleep,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.runtime import driver
from pyworkflow.runtime.driver import RunLinks
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import WorkflowRun
from tests.celery.flows import note

#: Workflows whose first ended run (per tag) crashes the worker before its follow-ups.
CRASH_AFTER_END = ("celery_can_crash", "celery_child_crash_leaf")
_after_end = driver.after_end


async def _crash_before_followups(
    storage: StorageBackend, run_id: str, links: RunLinks | None
) -> str | None:
    run = await storage.get_run(run_id)
    if run is not None and run.workflow_name in CRASH_AFTER_END:
        marker = crash_marker(json.loads(run.input_args)[0])
        if not marker.exists():
            marker.write_text(f"{os.getpid()} {run_id}")
            os._exit(137)
    return await _after_end(storage, run_id, links)


if os.environ.get("PYWORKFLOW_TEST_CRASH_AFTER_END"):  # only in the clusters that test it
    driver.after_end = _crash_before_followups


def _dir() -> Path:
    return Path(os.environ.get("PYWORKFLOW_TEST_DIR", "."))


def hang_marker(tag: str) -> Path:
    return _dir() / f"{tag}.hanging"


def crash_marker(tag: str) -> Path:
    return _dir() / f"{tag}.crashed"


def _hang_once(tag: str) -> None:
    """Block this workflow worker (as a CPU-bound activation would) the first time."""
    marker = hang_marker(tag)
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)


# ------------------------------------------------------------------ children


@step(name="celery_child_work")
async def child_work(tag: str, i: int, seconds: float) -> int:
    start = time.time()
    await asyncio.sleep(seconds)
    note("child_work", f"{tag}:{i}", start, time.time())
    return i * i


@workflow(name="celery_child_leaf")
async def leaf(tag: str, i: int, seconds: float, hang_at: int = -1) -> int:
    if i == hang_at:
        _hang_once(tag)
    return await child_work(tag, i, seconds)


@workflow(name="celery_child_fan_out")
async def fan_out(tag: str, count: int, seconds: float, hang_at: int = -1) -> list[int]:
    """``count`` awaited children started in one activation; their results in order."""
    results = await asyncio.gather(
        *(start_child_workflow(leaf, tag, i, seconds, hang_at) for i in range(count))
    )
    return list(results)


@workflow(name="celery_child_sleeper")
async def sleeper(tag: str, duration: str) -> int:
    await sleep(duration)
    return await child_work(tag, 7, 0)


@workflow(name="celery_child_waits")
async def waits_on_sleeper(tag: str, duration: str) -> str:
    value = await start_child_workflow(sleeper, tag, duration)
    return f"child said {value}"


@step(name="celery_child_leaf_step")
async def tree_leaf(tag: str, node: str) -> str:
    note("tree_leaf", f"{tag}:{node}", time.time())
    return f"leaf {node}"


@workflow(name="celery_child_tree")
async def tree(tag: str, node: str, depth: int, limit: int, width: int) -> Any:
    """A tree of runs ``limit`` levels below this one, ``width`` children per run;
    the leaves (at ``depth == limit``) run a step."""
    if depth == limit:
        return await tree_leaf(tag, node)
    branches = await asyncio.gather(
        *(
            start_child_workflow(tree, tag, f"{node}.{k}", depth + 1, limit, width)
            for k in range(width)
        )
    )
    return {node: list(branches)}


@step(name="celery_child_boom", max_retries=0)
async def boom(tag: str) -> str:
    note("boom", tag, time.time())
    raise ValueError(f"card declined for {tag}")


@workflow(name="celery_child_fails")
async def fails(tag: str) -> str:
    return await boom(tag)


@workflow(name="celery_child_catches")
async def catches(tag: str) -> dict[str, str]:
    try:
        await start_child_workflow(fails, tag)
    except ChildWorkflowFailedError as error:
        fallback = await child_work(tag, 3, 0)
        return {
            "child_run_id": error.child_run_id,
            "error": error.error,
            "error_type": error.error_type,
            "fallback": str(fallback),
        }
    return {"caught": "nothing"}


@workflow(name="celery_child_abandons")
async def abandons(tag: str) -> str:
    """Returns without waiting for its sleeping child (which TERMINATE then cancels)."""
    handle = await start_child_workflow(sleeper, tag, "1h", wait_for_completion=False)
    return handle.child_run_id


@workflow(name="celery_child_one_of_three_fails")
async def one_of_three_fails(tag: str) -> list[Any]:
    """Two children sleep for an hour, the one between them fails at once."""
    return list(
        await asyncio.gather(
            start_child_workflow(sleeper, f"{tag}-a", "1h"),
            start_child_workflow(fails, tag),
            start_child_workflow(sleeper, f"{tag}-b", "1h"),
        )
    )


@workflow(name="celery_child_compensates")
async def compensates(tag: str) -> int:
    """Sleeps for an hour; cancelled, it runs a compensation step (#8) and re-raises."""
    try:
        await sleep("1h")
    except CancellationError:
        async with shield():
            await child_work(tag, 8, 0)
        raise
    return 0


@workflow(name="celery_child_cancels_by_handle")
async def cancels_by_handle(tag: str) -> str:
    handle = await start_child_workflow(compensates, tag, wait_for_completion=False)
    await child_work(tag, 9, 0.3)  # meanwhile the child starts and sleeps
    await handle.cancel("not needed any more")  # a no-op on replays: the child has ended
    try:
        await handle.result()
    except ChildWorkflowFailedError as error:
        return f"{error.error_type}: {error.error}"
    return "the child was not cancelled"


@workflow(name="celery_child_fire_and_forget")
async def fire_and_forget(tag: str, count: int, seconds: float) -> dict[str, Any]:
    """Starts ``count`` children without waiting, runs a step of its own meanwhile,
    then collects the handles' results (a durable wait: the parent suspends)."""
    handles = [
        await start_child_workflow(leaf, tag, i, seconds, wait_for_completion=False)
        for i in range(count)
    ]
    own = await child_work(tag, 100, 0)
    results = [await handle.result() for handle in handles]
    return {
        "handles": [handle.child_run_id for handle in handles],
        "results": results,
        "own": own,
    }


@workflow(name="celery_child_crash_leaf")
async def crash_leaf(tag: str) -> int:
    return await child_work(tag, 5, 0)


@workflow(name="celery_child_crash_parent")
async def crash_parent(tag: str) -> str:
    """Its child's end crashes the worker before the parent is told."""
    return f"child said {await start_child_workflow(crash_leaf, tag)}"


# ------------------------------------------------------------------ continue-as-new


@workflow(name="celery_can_count")
async def count_down(tag: str, left: int, total: int) -> int:
    """No step: each run only continues as new, ``left`` times."""
    if left == 0:
        return total
    continue_as_new(tag, left - 1, total + left)


@step(name="celery_can_step")
async def chain_step(tag: str, left: int, total: int) -> int:
    note("chain_step", f"{tag}:{left}", time.time())
    return total + left


@workflow(name="celery_can_with_step")
async def count_down_with_step(tag: str, left: int, total: int, hang_at: int = -1) -> int:
    """One step per run; the run at ``left == hang_at`` blocks its first activation."""
    if left == hang_at:
        _hang_once(tag)
    total = await chain_step(tag, left, total)
    if left == 0:
        return total
    continue_as_new(tag, left - 1, total, hang_at=hang_at)


@workflow(name="celery_can_crash")
async def count_down_crash(tag: str, left: int, total: int) -> int:
    """``count_down``, whose first run's end crashes the worker before its follow-ups."""
    if left == 0:
        return total
    continue_as_new(tag, left - 1, total + left)


# ------------------------------------------------------------------ for the tests


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most ``(start, end)`` intervals open at one moment."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = current = 0
    for _, delta in edges:
        current += delta
        most = max(most, current)
    return most


def expected_tree(node: str, depth: int, limit: int, width: int) -> Any:
    """What ``tree(tag, node, depth, limit, width)`` returns."""
    if depth == limit:
        return f"leaf {node}"
    return {node: [expected_tree(f"{node}.{k}", depth + 1, limit, width) for k in range(width)]}


async def tree_runs(storage: StorageBackend, root: str) -> list[WorkflowRun]:
    """Every run of the tree under ``root`` (root included), breadth first."""
    found, todo = [], [root]
    while todo:
        run = await storage.get_run(todo.pop(0))
        assert run is not None
        found.append(run)
        todo += [c.run_id for c in await storage.get_children(run.run_id)]
    return found


async def runs_tagged(storage: StorageBackend, name: str, tag: str) -> list[WorkflowRun]:
    """Every stored run of workflow ``name`` whose arguments contain ``tag``."""
    found, cursor = [], None
    while True:
        page, cursor = await storage.list_runs(query=name, limit=500, cursor=cursor)
        found += [r for r in page if tag in r.input_args]
        if cursor is None:
            return found


async def no_timers(storage: StorageBackend, run_id: str) -> bool:
    return await storage.list_timers(run_id) == []
