"""The invariant checker (pyworkflow.testing.invariants) reports each broken invariant.

Healthy states come from the real engine on a real SQLite file; broken ones are made
by writing to that file behind the storage's back (raw SQL), since the storage itself
refuses to create most of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pyworkflow import start, step, workflow
from pyworkflow.engine import events as ev
from pyworkflow.storage.base import CommitBatch, HookUpdate, RunUpdate
from pyworkflow.storage.schemas import Hook, HookStatus, RunStatus, Timer, WorkflowRun
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from pyworkflow.testing.invariants import check_invariants, check_side_effects

NOW = datetime.now(UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStorageBackend]:
    backend = SQLiteStorageBackend(str(tmp_path / "inv.db"))
    await backend.connect()
    yield backend
    await backend.disconnect()


def _sql(store: SQLiteStorageBackend, statement: str, *params: object) -> None:
    """Write to the database file directly, as a bug or a bad disk would."""
    with sqlite3.connect(str(store.db_path)) as db:
        db.execute(statement, params)


async def _completed_run(store: SQLiteStorageBackend) -> str:
    @step(name="inv_add")
    async def add(a: int, b: int) -> int:
        return a + b

    @workflow(name="inv_wf")
    async def wf() -> int:
        return await add(1, 2) + await add(3, 4)

    return await start(wf, durable=True, storage=store)


async def _run(store: SQLiteStorageBackend, run_id: str, status: RunStatus) -> str:
    """A run row plus its workflow.started event, as the engine writes them."""
    started = ev.create_workflow_started_event(run_id, "wf", "[]", "{}")
    run = WorkflowRun(run_id, "wf", status)
    await store.commit(CommitBatch(run_id, [started], expected_sequence=-1, create_run=run))
    return run_id


async def _kinds(store: SQLiteStorageBackend, **kwargs: object) -> list[str]:
    report = await check_invariants(store, **kwargs)  # type: ignore[arg-type]
    return sorted(v.kind for v in report.violations)


async def test_healthy_completed_run_passes(store: SQLiteStorageBackend) -> None:
    run_id = await _completed_run(store)
    report = await check_invariants(store)
    assert report.ok, report.summary()
    assert (report.runs, report.terminal, report.resumable) == (1, 1, 0)
    assert (await check_invariants(store, run_ids=[run_id])).ok


async def test_gap_in_sequences_is_reported(store: SQLiteStorageBackend) -> None:
    run_id = await _completed_run(store)
    _sql(store, "DELETE FROM events WHERE run_id = ? AND sequence = 1", run_id)
    assert await _kinds(store) == ["sequence_gap"]


async def test_two_step_completed_for_one_step_id_are_reported(
    store: SQLiteStorageBackend,
) -> None:
    run_id = await _completed_run(store)
    # Move the terminal event up one and copy a step.completed into the hole, with no
    # dedup key: what a storage without the unique constraint would have let through.
    (last,) = [e for e in await store.get_events(run_id) if e.type.value == "workflow.completed"]
    first = (await store.get_events(run_id, ["step.completed"]))[0]
    _sql(store, "UPDATE events SET sequence = sequence + 1 WHERE run_id = ? AND sequence = ?",
         run_id, last.sequence)  # fmt: skip
    _sql(
        store,
        "INSERT INTO events (run_id, sequence, event_id, type, timestamp, data, dedup_key)"
        " SELECT run_id, ?, event_id || 'x', type, timestamp, data, NULL FROM events"
        " WHERE run_id = ? AND sequence = ?",
        last.sequence,
        run_id,
        first.sequence,
    )
    assert await _kinds(store) == ["duplicate_step_completed"]


async def test_second_terminal_event_is_reported(store: SQLiteStorageBackend) -> None:
    run_id = await _completed_run(store)
    n = len(await store.get_events(run_id))
    _sql(
        store,
        "INSERT INTO events (run_id, sequence, event_id, type, timestamp, data, dedup_key)"
        " SELECT run_id, ?, 'evt_dup', 'workflow.failed', timestamp, '{}', NULL FROM events"
        " WHERE run_id = ? AND sequence = ?",
        n,
        run_id,
        n - 1,
    )
    assert await _kinds(store) == ["duplicate_terminal_event", "event_after_terminal"]


async def test_terminal_status_without_terminal_event_is_reported(
    store: SQLiteStorageBackend,
) -> None:
    await _run(store, "run_a", RunStatus.RUNNING)
    await store.update_run_status("run_a", RunStatus.COMPLETED)
    assert await _kinds(store) == ["status_without_terminal_event"]


async def test_status_disagreeing_with_terminal_event_is_reported(
    store: SQLiteStorageBackend,
) -> None:
    run_id = await _completed_run(store)
    _sql(store, "UPDATE workflow_runs SET status = 'failed' WHERE run_id = ?", run_id)
    assert await _kinds(store) == ["status_mismatch"]


async def test_terminal_event_on_a_running_run_is_reported(store: SQLiteStorageBackend) -> None:
    run_id = await _completed_run(store)
    _sql(store, "UPDATE workflow_runs SET status = 'suspended' WHERE run_id = ?", run_id)
    # Suspended with a terminal event: the mismatch, and nothing resumes it either.
    assert await _kinds(store) == ["status_mismatch", "stranded"]


async def test_event_appended_after_the_end_is_reported(store: SQLiteStorageBackend) -> None:
    run_id = await _completed_run(store)
    await store.record_event(ev.create_context_updated_event(run_id, {"late": True}))
    assert await _kinds(store) == ["event_after_terminal"]


async def test_timer_on_an_ended_run_is_an_orphan(store: SQLiteStorageBackend) -> None:
    run_id = await _completed_run(store)
    timer = Timer(run_id, "sleep", "sleep_1", NOW)
    await store.commit(CommitBatch(run_id, timers_upsert=[timer]))
    assert await _kinds(store) == ["orphan_timer"]
    assert await _kinds(store, run_ids=[run_id]) == ["orphan_timer"]


async def test_followup_timer_on_an_ended_run_is_not_an_orphan(
    store: SQLiteStorageBackend,
) -> None:
    run_id = await _completed_run(store)
    await store.commit(CommitBatch(run_id, timers_upsert=[Timer(run_id, "followup", "f", NOW)]))
    assert await _kinds(store) == []


async def test_timer_of_a_missing_run_is_an_orphan(store: SQLiteStorageBackend) -> None:
    await store.commit(
        CommitBatch("run_ghost", timers_upsert=[Timer("run_ghost", "sleep", "s", NOW)])
    )
    await store.commit(
        CommitBatch("sched_x", timers_upsert=[Timer("sched_x", "schedule", "next", NOW)])
    )
    report = await check_invariants(store)
    assert sorted((v.kind, v.run_id) for v in report.violations) == [
        ("orphan_timer", "run_ghost"),
        ("orphan_timer", "sched_x"),  # a schedule timer whose schedule does not exist
    ]


async def test_pending_hook_on_an_ended_run_is_reported(store: SQLiteStorageBackend) -> None:
    run_id = await _completed_run(store)
    await store.create_hook(Hook("hook_1", run_id, "tok_1"))
    assert await _kinds(store) == ["pending_hook_after_end"]
    await store.update_hook_status("hook_1", HookStatus.DISPOSED)
    assert await _kinds(store) == []


async def test_suspended_run_with_nothing_pointing_at_it_is_stranded(
    store: SQLiteStorageBackend,
) -> None:
    await _run(store, "run_s", RunStatus.SUSPENDED)
    report = await check_invariants(store)
    assert [(v.kind, v.run_id) for v in report.violations] == [("stranded", "run_s")]
    assert "suspended" in report.violations[0].detail


async def test_a_pending_run_needs_something_to_resume_it(store: SQLiteStorageBackend) -> None:
    # The stale-run scan takes RUNNING/INTERRUPTED runs only: this needs a timer or a task.
    await _run(store, "run_w", RunStatus.PENDING)
    assert await _kinds(store) == ["stranded"]
    assert await _kinds(store, queued_run_ids={"run_w"}) == []


async def test_an_interrupted_run_is_taken_by_the_stale_scan(store: SQLiteStorageBackend) -> None:
    await _run(store, "run_i", RunStatus.INTERRUPTED)  # no lease: its recovery died
    assert await _kinds(store) == []
    assert "run_i" in await store.list_stale_runs(datetime.now(UTC))


async def test_each_way_of_being_resumable_is_counted(store: SQLiteStorageBackend) -> None:
    await _run(store, "run_timer", RunStatus.SUSPENDED)
    await store.commit(
        CommitBatch("run_timer", timers_upsert=[Timer("run_timer", "sleep", "s", NOW)])
    )
    await _run(store, "run_hook", RunStatus.SUSPENDED)
    await store.create_hook(Hook("hook_1", "run_hook", "tok_h"))
    await _run(store, "run_queued", RunStatus.SUSPENDED)
    await _run(store, "run_stale", RunStatus.RUNNING)  # no lease: the scan takes it
    await _run(store, "run_leased", RunStatus.RUNNING)
    assert await store.acquire_run_lease("run_leased", "me", 60, datetime.now(UTC))
    await _run(store, "run_parent", RunStatus.SUSPENDED)
    await store.create_run(
        WorkflowRun("run_child", "wf", RunStatus.SUSPENDED, parent_run_id="run_parent")
    )
    await store.commit(
        CommitBatch("run_child", timers_upsert=[Timer("run_child", "sleep", "s", NOW)])
    )
    report = await check_invariants(store, queued_run_ids=["run_queued"])
    assert report.ok, report.summary()
    assert report.resumable == 7
    assert report.resumable_by == {
        "timer": 2, "hook": 1, "queued": 1, "stale": 1, "leased": 1, "child": 1
    }  # fmt: skip


async def test_expired_lease_makes_a_running_run_stale(store: SQLiteStorageBackend) -> None:
    await _run(store, "run_r", RunStatus.RUNNING)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert await store.acquire_run_lease("run_r", "dead", 1, long_ago)
    assert (await check_invariants(store)).resumable_by == {"stale": 1}


async def test_run_ids_limits_the_check_and_names_missing_runs(
    store: SQLiteStorageBackend,
) -> None:
    await _run(store, "run_s", RunStatus.SUSPENDED)  # stranded, but not asked about
    run_id = await _completed_run(store)
    report = await check_invariants(store, run_ids=[run_id, "run_nope"])
    assert report.runs == 1
    assert [(v.kind, v.run_id) for v in report.violations] == [("missing_run", "run_nope")]


async def test_run_ended_by_the_engine_with_a_hook_update_passes(
    store: SQLiteStorageBackend,
) -> None:
    await _run(store, "run_h", RunStatus.SUSPENDED)
    await store.create_hook(Hook("hook_1", "run_h", "tok_x"))
    done = ev.create_workflow_completed_event("run_h", 1, "wf")
    update = RunUpdate(RunStatus.COMPLETED, result="1")
    await store.commit(
        CommitBatch(
            "run_h",
            [done],
            run_update=update,
            hook_updates=[HookUpdate("hook_1", HookStatus.DISPOSED)],
        )
    )
    assert (await check_invariants(store)).ok


def test_side_effects_once_each_pass() -> None:
    assert check_side_effects({"r:a": 1, "r:b": 1}, {"r:a": 1, "r:b": 1}) == []


def test_side_effect_ran_twice_without_a_kill_is_reported() -> None:
    (v,) = check_side_effects({"r:a": 2}, {"r:a": 1})
    assert (v.kind, v.run_id) == ("duplicate_side_effect", "r")


def test_side_effect_ran_twice_with_a_kill_inside_is_allowed() -> None:
    assert check_side_effects({"r:a": 2}, {"r:a": 1}, died_inside={"r:a"}) == []
    # Each kill inside allows one more run; two kills, three runs.
    assert check_side_effects({"r:a": 3}, {"r:a": 1}, died_inside=["r:a", "r:a"]) == []
    assert [v.kind for v in check_side_effects({"r:a": 3}, {"r:a": 1}, ["r:a"])] == [
        "duplicate_side_effect"
    ]


def test_completion_recorded_twice_or_without_a_body_is_reported() -> None:
    kinds = [v.kind for v in check_side_effects({"r:a": 1}, {"r:a": 2, "r:b": 1})]
    assert kinds == ["duplicate_completion", "missing_side_effect"]
