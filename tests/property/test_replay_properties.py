"""Replay from any prefix of a run's log finishes the run the same way.

A random *program* (a list of operations: a step, a step that fails once then
succeeds on retry, a sleep of 0 or 5 ms, a hook the test answers, an
``asyncio.gather`` of 2-3 steps; keys repeat, so identical calls happen) is the input
of one registered interpreter workflow. Each example:

1. runs the program durably on a storage that records every write it accepted, as
   submitted (sleeps fire through the local timer service or ``resume()``, hooks are
   answered with ``resume_hook``);
2. for every write boundary ``k`` — every state the storage can hold, since each write
   (a commit, or ``begin_activation`` marking the run RUNNING) is atomic and a crash
   falls between two of them — applies the first ``k`` writes to a fresh storage with
   the storage's own methods (the dead activation's lease expired), checks the
   invariants there (the run is terminal or resumable), then resumes and drives it to
   the end;
3. asserts: the same result as the original and as the program's meaning; the same
   step results by step id; each step body ran only for calls not completed in the
   prefix (a flaky one twice: it fails once in each fresh world); the invariants hold.

Step bodies count their runs in ``WORLD``, reset for the original run and for each
replay (a fresh world, as after a process restart).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import copy
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, event, given
from hypothesis import strategies as st

from pyworkflow import get_workflow_result, hook, resume, resume_hook, sleep, start, step, workflow
from pyworkflow.engine.hook_delivery import deliver_payload
from pyworkflow.runtime.local import _services
from pyworkflow.serialization import deserialize
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, HookStatus, RunStatus, WorkflowRun
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from pyworkflow.testing.invariants import check_invariants
from tests.property.strategies import prop_settings

# ---------------------------------------------------------------------- the world


class World:
    """Side effects of step bodies since the last reset."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.failed: set[str] = set()

    def reset(self) -> None:
        self.counts.clear()
        self.failed.clear()


WORLD = World()


@step(name="prop_replay_step")
async def plain_step(key: str) -> dict[str, str]:
    WORLD.counts[key] += 1
    await asyncio.sleep(0)  # let gathered siblings interleave
    return {"key": key, "kind": "step"}


@step(name="prop_replay_flaky", max_retries=3, retry_delay=0)
async def flaky_step(key: str) -> dict[str, str]:
    WORLD.counts[key] += 1
    if key not in WORLD.failed:  # fails the first time it runs in this world
        WORLD.failed.add(key)
        raise ConnectionError(f"{key}: first attempt fails")
    return {"key": key, "kind": "flaky"}


def payload_for(name: str) -> dict[str, Any]:
    return {"name": name, "size": len(name)}


async def _call(op: list[Any]) -> Any:
    kind, arg = op
    if kind == "step":
        return await plain_step(arg)
    if kind == "flaky":
        return await flaky_step(arg)
    if kind == "sleep":
        await sleep(arg)
        return "slept"
    if kind == "hook":
        return await hook(arg)
    return list(await asyncio.gather(*(_call(inner) for inner in arg)))


@workflow(name="prop_replay_program")
async def interpret(program: list[list[Any]]) -> list[Any]:
    return [await _call(op) for op in program]


def meaning(op: list[Any]) -> Any:
    """What an operation returns, by definition."""
    kind, arg = op
    if kind in ("step", "flaky"):
        return {"key": arg, "kind": kind}
    if kind == "sleep":
        return "slept"
    if kind == "hook":
        return payload_for(arg)
    return [meaning(inner) for inner in arg]


def step_calls(program: list[list[Any]]) -> collections.Counter[tuple[str, str]]:
    """(kind, key) of every step call, with multiplicity."""
    calls: collections.Counter[tuple[str, str]] = collections.Counter()
    for kind, arg in program:
        if kind in ("step", "flaky"):
            calls[(kind, arg)] += 1
        elif kind == "gather":
            calls.update((inner_kind, inner_key) for inner_kind, inner_key in arg)
    return calls


# ---------------------------------------------------------------------- programs

steps = st.tuples(st.just("step"), st.sampled_from(["a", "b", "c"])).map(list)
flakies = st.tuples(st.just("flaky"), st.sampled_from(["x", "y"])).map(list)
operations = st.one_of(
    steps,
    flakies,
    st.tuples(st.just("sleep"), st.sampled_from([0, 0.005])).map(list),
    st.tuples(st.just("hook"), st.sampled_from(["approve", "ship"])).map(list),
    st.lists(st.one_of(steps, flakies), min_size=2, max_size=3).map(lambda ops: ["gather", ops]),
)
programs = st.lists(operations, min_size=1, max_size=6)


# ---------------------------------------------------------------------- storage


# Every storage method that changes what a run *is* (lease-only calls and timer claims
# are coordination: a crash makes them expire, which the copy reproduces by leaving
# them out). ``begin_activation`` marks a run RUNNING together with its lease.
_WRITES = (
    "commit",
    "begin_activation",
    "create_run",
    "update_run_status",
    "update_run_recovery_attempts",
    "update_run_context",
    "update_run_continuation",
    "record_event",
    "create_hook",
    "update_hook_status",
    "create_step",
    "update_step_status",
    "set_cancellation_flag",
    "clear_cancellation_flag",
)
# Writes made by another recorded write (a default begin_activation commits) are part
# of it: counted per task, since the timer service writes concurrently.
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("recording_depth", default=0)
# The lease of an activation that died: held by nobody alive, expired long ago.
DEAD_OWNER = "dead-activation"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


class Recording:
    """Mixin: remember every write a backend accepted, in order, as submitted."""

    writes: list[tuple[str, tuple[Any, ...], dict[str, Any]]]


def _recorded(name: str) -> Any:
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        snapshot = copy.deepcopy((args, kwargs))  # the engine sets sequences on success
        token = _DEPTH.set(_DEPTH.get() + 1)
        try:
            result = await getattr(super(Recording, self), name)(*args, **kwargs)
        finally:
            _DEPTH.reset(token)
        if _DEPTH.get() == 0 and result is not False:  # a refused lease changed nothing
            self.writes.append((name, *snapshot))
        return result

    method.__name__ = name
    return method


for _name in _WRITES:
    setattr(Recording, _name, _recorded(_name))


class RecordingMemory(Recording, InMemoryStorageBackend):
    def __init__(self) -> None:
        super().__init__()
        self.writes = []


class RecordingSQLite(Recording, SQLiteStorageBackend):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writes = []


def _fresh(kind: str, directory: Path, name: str) -> Any:
    return RecordingMemory() if kind == "memory" else RecordingSQLite(str(directory / name))


async def copy_prefix(writes: list[tuple[str, Any, Any]], target: StorageBackend) -> None:
    """Re-apply recorded writes through the storage's own methods. The activation that
    was running is gone (as after a crash): its lease is expired, not carried over."""
    for name, args, kwargs in copy.deepcopy(writes):
        if name == "commit":
            batch = args[0] if args else kwargs["batch"]
            batch.lease_owner = None
        elif name == "begin_activation":
            await target.begin_activation(args[0], DEAD_OWNER, 1.0, LONG_AGO)
            continue
        await getattr(target, name)(*args, **kwargs)


# ---------------------------------------------------------------------- driving


async def drive_to_end(store: StorageBackend, run_id: str, label: str) -> WorkflowRun:
    """Answer hooks and fire due timers until the run ends (bounded polling)."""
    deadline = time.monotonic() + 20
    while True:
        run = await store.get_run(run_id)
        assert run is not None
        if run.status in TERMINAL_STATUSES:
            return run
        pending = await store.list_hooks(run_id, status=HookStatus.PENDING)
        for waiting in pending:
            await resume_hook(waiting.token, payload_for(waiting.name or ""), storage=store)
        if not pending:
            now = time.time()
            due = [t for t in await store.list_timers(run_id) if t.fire_at.timestamp() <= now]
            if due or run.status is RunStatus.RUNNING:
                await resume(run_id, storage=store)
            await asyncio.sleep(0.002)
        assert time.monotonic() < deadline, f"{label}: run {run_id} stuck as {run.status}"


async def completed_results(store: StorageBackend, run_id: str) -> dict[str, Any]:
    events = await store.get_events(run_id, ["step.completed"])
    return {e.data["step_id"]: deserialize(e.data["result"]) for e in events}


def expected_runs(program: list[list[Any]], done: dict[str, Any]) -> dict[str, int]:
    """Body runs a replay owes: each call not completed in the prefix runs once, and
    the first flaky run of a key in a fresh world fails and is retried."""
    finished = collections.Counter((r["kind"], r["key"]) for r in done.values())
    owed: dict[str, int] = {}
    for (kind, key), calls in step_calls(program).items():
        left = calls - finished[(kind, key)]
        assert left >= 0
        if left:
            owed[key] = left + (1 if kind == "flaky" else 0)
    return owed


def describe(writes: list[tuple[str, Any, Any]]) -> str:
    """One line per write, for failure messages."""
    lines = []
    for number, (name, args, kwargs) in enumerate(writes, 1):
        batch = args[0] if args else kwargs.get("batch")
        if name != "commit" or batch is None:
            lines.append(f"  {number}. {name}")
            continue
        status = (
            batch.run_update.status.value if batch.run_update and batch.run_update.status else ""
        )
        events = ",".join(e.type.value for e in batch.events)
        timers = (
            f" +timers={[t.timer_id for t in batch.timers_upsert]}" if batch.timers_upsert else ""
        )
        gone = f" -timers={batch.timers_delete}" if batch.timers_delete else ""
        lines.append(f"  {number}. commit [{events}] {status}{timers}{gone}")
    return "\n".join(lines)


async def _stop_services(only: StorageBackend | None = None) -> None:
    """Stop this loop's timer services (of one storage, or all) before disconnecting."""
    for service in _services.get(asyncio.get_running_loop(), {}).values():
        if only is None or service.storage is only:
            await service.stop()


# ---------------------------------------------------------------------- the property


async def original_run(program: list[list[Any]], store: Any) -> tuple[str, list[Any]]:
    await store.connect()
    WORLD.reset()
    run_id = await start(interpret, program, durable=True, storage=store)
    await drive_to_end(store, run_id, "original")
    result = await get_workflow_result(run_id, storage=store)
    assert result == [meaning(op) for op in program]
    owed = expected_runs(program, {})
    assert dict(WORLD.counts) == owed, (program, dict(WORLD.counts))
    return run_id, result


async def replay_from(
    program: list[list[Any]], original: Any, run_id: str, k: int, fresh: Any
) -> None:
    label = f"prefix of {k}/{len(original.writes)} writes"
    await fresh.connect()
    try:
        await copy_prefix(original.writes[:k], fresh)
        before = await check_invariants(fresh, run_ids=[run_id])
        assert before.ok, f"{label}: {before.summary()}\n{describe(original.writes[:k])}"
        done = await completed_results(fresh, run_id)
        WORLD.reset()
        await resume(run_id, storage=fresh)
        await drive_to_end(fresh, run_id, label)
        assert await get_workflow_result(run_id, storage=fresh) == await get_workflow_result(
            run_id, storage=original
        ), label
        owed = expected_runs(program, done)
        assert dict(WORLD.counts) == owed, (
            f"{label}: step bodies ran {dict(WORLD.counts)}, expected {owed}\n"
            f"prefix:\n{describe(original.writes[:k])}\nreplay:\n{describe(fresh.writes[k:])}"
        )
        assert await completed_results(fresh, run_id) == await completed_results(
            original, run_id
        ), label
        after = await check_invariants(fresh, run_ids=[run_id])
        assert after.ok, f"{label}: {after.summary()}"
    finally:
        await _stop_services(fresh)
        await fresh.disconnect()


async def check_program(
    program: list[list[Any]], kind: str, directory: Path, prefixes: list[int] | None
) -> None:
    original = _fresh(kind, directory, "original.db")
    try:
        run_id, _ = await original_run(program, original)
        total = len(original.writes)
        chosen = range(1, total) if prefixes is None else sorted({p % total or 1 for p in prefixes})
        for k in chosen:
            await replay_from(program, original, run_id, k, _fresh(kind, directory, f"p{k}.db"))
    finally:
        await _stop_services()
        await original.disconnect()


# No shrinking: programs are at most 6 operations and a failure prints the program and
# its write log; shrinking a timing-dependent failure would only re-run it for minutes.
_NO_SHRINK = {"phases": [Phase.explicit, Phase.reuse, Phase.generate]}


@prop_settings(40, **_NO_SHRINK)
@given(programs)
def test_replay_from_every_prefix_memory(program: list[list[Any]]) -> None:
    for kind in sorted({op[0] for op in program}):
        event(f"program has {kind}")  # see --hypothesis-show-statistics
    asyncio.run(check_program(program, "memory", Path("."), None))


@prop_settings(8, **_NO_SHRINK)
@given(programs, st.lists(st.integers(1, 10**6), min_size=1, max_size=3))
def test_replay_from_sampled_prefixes_sqlite(
    tmp_path_factory: pytest.TempPathFactory, program: list[list[Any]], prefixes: list[int]
) -> None:
    directory = tmp_path_factory.mktemp("replay")
    asyncio.run(check_program(program, "sqlite", directory, prefixes))


# ---------------------------------------------------------------------- regressions


class DeliverBeforeSuspending(RecordingMemory):
    """Delivers the waiting hook's payload just before the activation's suspending
    commit, as a ``resume_hook`` from another task or process can."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered = False

    async def commit(self, batch: Any) -> None:
        update = batch.run_update
        if not self.delivered and update is not None and update.status is RunStatus.SUSPENDED:
            pending = await self.list_hooks(batch.run_id, status=HookStatus.PENDING)
            if pending:
                self.delivered = True
                await deliver_payload(self, pending[0].token, payload_for("approve"))
        await super().commit(batch)


def test_regression_hook_delivered_during_suspending_commit_keeps_run_resumable() -> None:
    """Found by the replay property (program: sleep 5 ms, hook). ``hook.received`` and
    its resume guard timer are committed while the activation that created the hook is
    suspending; the activation's commit conflicts, merges the payload, and then deletes
    the guard timer as if it had consumed it. A crash right after that commit leaves a
    SUSPENDED run with a payload it never saw and nothing to resume it (no timer, no
    pending hook): stranded."""

    async def scenario() -> None:
        store = DeliverBeforeSuspending()
        try:
            run_id = await start(interpret, [["hook", "approve"]], durable=True, storage=store)
            await drive_to_end(store, run_id, "regression")
        finally:
            await _stop_services()
        assert store.delivered
        received = next(
            i
            for i, (name, args, _) in enumerate(store.writes)
            if name == "commit" and any(e.type.value == "hook.received" for e in args[0].events)
        )
        suspending = received + 1  # the activation's commit, retried after the merge
        crashed = RecordingMemory()
        await copy_prefix(store.writes[: suspending + 1], crashed)
        report = await check_invariants(crashed, run_ids=[run_id])
        assert report.ok, f"{report.summary()}\n{describe(store.writes[: suspending + 1])}"

    asyncio.run(scenario())
