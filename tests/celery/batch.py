"""Batches of ``celery_batch`` runs (tests/celery/flows.py) and the checks made on them.

A batch is many 5-step runs started from the test process with
``start(..., runtime="celery")``. Each step body appends ``batch <tag>:<i> <pid> ...``
to ``events.log`` when it begins, so how often each body ran, and where, is counted
from that file; each run's event log is checked for anything recorded twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyworkflow import start
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun
from tests.celery import flows

STEPS = 5


@dataclass
class Batch:
    """Runs of ``celery_batch``: run ``k`` has tag ``tags[k]`` and base ``k``."""

    prefix: str
    tags: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)
    created_after: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Errors of ``start()`` calls that raised (the run they recorded is found anyway).
    failed_starts: list[str] = field(default_factory=list)

    def expected(self, k: int) -> str:
        return str(k + sum(range(STEPS)))


async def launch(store: StorageBackend, count: int, batch: Batch | None = None) -> Batch:
    """Start ``count`` more runs of ``batch`` (a new one by default), all at once.

    A ``start()`` that raises after recording its run (the broker was unreachable) is
    noted in ``failed_starts``, and its run is looked up in the storage: it must
    complete too, started by its resume guard."""
    batch = batch or Batch(prefix=uuid.uuid4().hex[:8])
    first = len(batch.tags)
    tags = [f"{batch.prefix}-{k}" for k in range(first, first + count)]
    results = await asyncio.gather(
        *(
            start(flows.batch, tag, k, runtime="celery", storage=store)
            for k, tag in enumerate(tags, start=first)
        ),
        return_exceptions=True,
    )
    failed = {t: r for t, r in zip(tags, results, strict=True) if isinstance(r, BaseException)}
    batch.failed_starts += [f"{type(e).__name__}: {e}" for e in failed.values()]
    found = await _runs_of_tags(store, set(failed), batch.created_after) if failed else {}
    batch.tags += tags
    pairs = zip(tags, results, strict=True)
    batch.run_ids += [found[t] if t in failed else str(r) for t, r in pairs]
    return batch


async def _runs_of_tags(store: StorageBackend, tags: set[str], since: datetime) -> dict[str, str]:
    """Tag -> run id of the ``celery_batch`` runs with those tags created after ``since``."""
    found: dict[str, str] = {}
    cursor = None
    while True:
        page, cursor = await store.list_runs(
            start_time=since - timedelta(seconds=5), limit=100, cursor=cursor
        )
        for run in page:
            if run.workflow_name == "celery_batch" and json.loads(run.input_args)[0] in tags:
                found[json.loads(run.input_args)[0]] = run.run_id
        if cursor is None:
            break
    missing = tags - set(found)
    assert not missing, f"start() raised and recorded no run for {sorted(missing)[:5]}"
    return found


def body_runs(workdir: Path, prefix: str) -> dict[str, list[int]]:
    """``<tag>:<i>`` -> pids of every run of that step body, in order."""
    found: dict[str, list[int]] = {}
    path = workdir / "events.log"
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, key, pid, _, _ = line.split()
        if kind == "batch" and key.startswith(prefix + "-"):
            found.setdefault(key, []).append(int(pid))
    return found


async def wait_for_bodies(workdir: Path, prefix: str, count: int, timeout: float = 60) -> None:
    """Return once at least ``count`` step bodies of the batch have begun."""
    deadline = time.monotonic() + timeout
    while sum(map(len, body_runs(workdir, prefix).values())) < count:
        assert time.monotonic() < deadline, f"fewer than {count} steps ran in {timeout}s"
        await asyncio.sleep(0.05)


async def wait_all(
    store: StorageBackend, run_ids: list[str], timeout: float
) -> dict[str, WorkflowRun]:
    """Every run, once all of them have ended; fails naming the ones that did not."""
    done: dict[str, WorkflowRun] = {}
    deadline = time.monotonic() + timeout
    while True:
        for run_id in run_ids:
            if run_id not in done:
                run = await store.get_run(run_id)
                if run is not None and run.status in TERMINAL_STATUSES:
                    done[run_id] = run
        if len(done) == len(run_ids):
            return done
        if time.monotonic() > deadline:
            stuck = [r for r in run_ids if r not in done]
            raise AssertionError(f"{len(stuck)} runs unfinished after {timeout}s: {stuck[:5]}")
        await asyncio.sleep(0.1)


#: Events that may appear once per key in a run's log (``step.started`` may repeat: a
#: redispatched attempt is recorded with its dispatch number).
_ONCE = {
    "workflow.started",
    "workflow.completed",
    "workflow.failed",
    "step.completed",
    "step.failed",
    "step.retrying",
    "sleep.started",
    "sleep.completed",
}


async def recorded_twice(store: StorageBackend, run_id: str) -> list[str]:
    """What the run's log holds more than once that must be there once."""
    counts: Counter[tuple[str, ...]] = Counter()
    for event in await store.get_events(run_id):
        kind, data = event.type.value, event.data
        if kind in _ONCE:
            counts[(kind, str(data.get("step_id", "")), str(data.get("attempt", "")))] += 1
        elif kind == "step.started":
            counts[(kind, data["step_id"], str(data["attempt"]), str(data.get("dispatch")))] += 1
    return [" ".join(key) for key, n in counts.items() if n > 1]


async def check(
    store: StorageBackend,
    batch: Batch,
    runs: dict[str, WorkflowRun],
    starts_may_fail: bool = False,
) -> Counter[str]:
    """Every start returned (unless ``starts_may_fail``), every run completed with its
    result, five steps recorded once each, nothing recorded twice. Returns how many
    runs hold each kind of event."""
    assert starts_may_fail or not batch.failed_starts, batch.failed_starts[:3]
    kinds: Counter[str] = Counter()
    for k, run_id in enumerate(batch.run_ids):
        run = runs[run_id]
        assert run.status is RunStatus.COMPLETED, (run_id, run.status, run.error)
        assert run.result == batch.expected(k), (run_id, run.result)
        events = await store.get_events(run_id)
        kinds.update({e.type.value for e in events})
        assert sum(e.type.value == "step.completed" for e in events) == STEPS, run_id
        assert not await recorded_twice(store, run_id), (
            run_id,
            await recorded_twice(store, run_id),
        )
    return kinds


def repeated_bodies(workdir: Path, batch: Batch) -> dict[str, list[int]]:
    """Step bodies of the batch that ran more than once (each must have run)."""
    runs = body_runs(workdir, batch.prefix)
    missing = [f"{t}:{i}" for t in batch.tags for i in range(STEPS) if f"{t}:{i}" not in runs]
    assert not missing, f"step bodies never ran: {missing[:5]}"
    return {key: pids for key, pids in runs.items() if len(pids) > 1}
