"""Schedules on the Celery runtime: real Redis, a workflow worker (which also consumes
``pyworkflow.schedules``), a step worker of two processes, Beat.

Each schedule has a durable timer at its next slot; Beat's tick claims it and sends
``pyworkflow.execute_scheduled_workflow`` timed for the slot, which fires the slot
per the overlap policy (pyworkflow/scheduler/schedules.py) and starts the run on the
workflow workers. The schedules here are short: a 1 or 2 s interval between
``start_at`` (a moment ahead, so every slot is known in advance) and ``end_at``, so
each test knows every slot and checks that each one was fired (``schedule.triggered``)
or skipped (``schedule.skipped``), exactly once. Step bodies log each run
(tests/celery/schedule_flows.py). Numbers worth knowing are printed (``-s``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyworkflow import backfill_schedule, configure, create_schedule, trigger_schedule
from pyworkflow.core.scheduled import unregister_scheduled_workflow
from pyworkflow.engine import dispatch
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import (
    TERMINAL_STATUSES,
    OverlapPolicy,
    RunStatus,
    Schedule,
    ScheduleSpec,
    ScheduleStatus,
)
from tests.celery.conftest import Cluster, new_cluster, start_default
from tests.celery.schedule_flows import bodies  # registers the workflows here too
from tests.servers import RedisServer
from tests.support import descendants, eventually

assert celery_runtime.CeleryRuntime  # imported for its registration
# The declaration is for the workers' tick (§5.4); keep this session's list clean.
unregister_scheduled_workflow("celery_sched_new_year")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

GRACE = 2
#: A lost start or resume is replaced after 3 s, a dead activation taken over after 3 s.
FAST_RECOVERY = {
    "PYWORKFLOW_LEASE_SECONDS": "3",
    "PYWORKFLOW_RESUME_GUARD_SECONDS": "3",
    "PYWORKFLOW_STEP_REDISPATCH_SECONDS": "10",
    "PYWORKFLOW_FOLLOWUP_DELAY_SECONDS": "3",
    # Slots due longer ago than this when Beat is back count as missed (default 5 s).
    "PYWORKFLOW_SCHEDULE_GRACE_SECONDS": str(GRACE),
}
MISSED = "missed while no scheduler was running"
OVERLAP = "a previous run is still going"


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    group = new_cluster(redis_server, tmp_path_factory.mktemp("schedules"), **FAST_RECOVERY)
    try:
        yield start_default(group)
    finally:
        group.close()


@pytest.fixture
async def client(
    celery_env: dict[str, Any], store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StorageBackend]:
    """This process as the application: the cluster's storage, the Celery runtime
    (``trigger_schedule`` and ``backfill_schedule`` start runs through it)."""
    monkeypatch.setattr(dispatch, "RESUME_GUARD_SECONDS", 3.0)
    configure(default_runtime="celery", storage=store)
    yield store


def _tag() -> str:
    return uuid.uuid4().hex[:10]


async def _every(
    store: StorageBackend,
    workflow: str,
    *args: Any,
    seconds: int,
    slots: int,
    policy: OverlapPolicy = OverlapPolicy.SKIP,
) -> tuple[str, list[datetime]]:
    """An interval schedule with exactly ``slots`` slots, the first one a second ahead."""
    first = datetime.now(UTC) + timedelta(seconds=1)
    every = timedelta(seconds=seconds)
    spec = ScheduleSpec(
        interval=f"{seconds}s", start_at=first, end_at=first + (slots - 0.5) * every
    )
    schedule = await create_schedule(workflow, spec, *args, overlap_policy=policy, storage=store)
    return schedule.schedule_id, [first + k * every for k in range(slots)]


async def _settled(store: StorageBackend, schedule_id: str, timeout: float = 30) -> Schedule:
    """The schedule once every slot was handled and every run it started has ended."""

    async def done() -> Schedule | None:
        s = await store.get_schedule(schedule_id)
        quiet = s is not None and s.next_run_time is None and s.buffered_count == 0
        return s if quiet and s is not None and not s.running_run_ids else None

    found: Schedule = await eventually(
        done, timeout=timeout, interval=0.05, message=f"{schedule_id} never settled"
    )
    return found


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _fired(store: StorageBackend, schedule_id: str) -> list[dict[str, Any]]:
    """``schedule.triggered`` payloads, oldest first (``scheduled_time``, ``actual_time``,
    ``workflow_run_id``)."""
    return [e.data for e in await store.get_events(schedule_id, ["schedule.triggered"])]


async def _skipped(store: StorageBackend, schedule_id: str) -> list[dict[str, Any]]:
    return [e.data for e in await store.get_events(schedule_id, ["schedule.skipped"])]


async def _window(store: StorageBackend, run_id: str) -> tuple[datetime, datetime, RunStatus]:
    """When the run started and ended (its events), and how it ended."""
    run = await store.get_run(run_id)
    assert run is not None and run.status in TERMINAL_STATUSES, (run_id, run)
    events = await store.get_events(run_id)
    started = next(e.timestamp for e in events if e.type.value == "workflow.started")
    return started, events[-1].timestamp, run.status


async def _event(store: StorageBackend, run_id: str, kind: str) -> Any:
    (event,) = await store.get_events(run_id, [kind])
    return event


def _same(a: datetime, b: datetime) -> bool:
    return abs((a - b).total_seconds()) < 0.002


def _slot_index(slots: list[datetime], value: str) -> int:
    (index,) = [i for i, slot in enumerate(slots) if _same(slot, _at(value))]
    return index


async def _each_slot_once(
    store: StorageBackend, schedule_id: str, slots: list[datetime]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every slot was fired or skipped, and only once; returns (fired, skipped)."""
    fired, skipped = await _fired(store, schedule_id), await _skipped(store, schedule_id)
    handled = [_slot_index(slots, e["scheduled_time"]) for e in fired + skipped]
    assert sorted(handled) == list(range(len(slots))), (fired, skipped)
    return fired, skipped


async def _check_runs(
    store: StorageBackend, schedule: Schedule, tag: str, fired: list[dict[str, Any]]
) -> list[tuple[datetime, datetime, RunStatus]]:
    """One run per firing, each a distinct run whose step body ran once, and the
    schedule's counters agree with how the runs ended."""
    run_ids = [e["workflow_run_id"] for e in fired]
    assert len(set(run_ids)) == len(run_ids) == schedule.total_runs, run_ids
    windows = [await _window(store, run_id) for run_id in run_ids]
    completed = [r for r, w in zip(run_ids, windows, strict=True) if w[2] is RunStatus.COMPLETED]
    ran = [run_id for run_id, _, _, _ in bodies(tag)]
    assert sorted(ran) == sorted(completed), "a step body ran twice, or for a run that did not end"
    failed = sum(w[2] is RunStatus.FAILED for w in windows)
    assert (schedule.successful_runs, schedule.failed_runs) == (len(completed), failed)
    return windows


# ------------------------------------------------------------------ on time


@pytest.mark.parametrize("seconds", [2, 1])
async def test_interval_schedule_fires_each_slot_on_time(
    client: StorageBackend, seconds: int
) -> None:
    """Each slot starts one run, within 0.5 s of the slot: the tick before it sends
    the slot's task timed for it (a tick comes every second, each looking 1.5 s
    ahead), whether or not the previous run ended just before."""
    tag = _tag()
    schedule_id, slots = await _every(client, "celery_sched_quick", tag, seconds=seconds, slots=5)
    schedule = await _settled(client, schedule_id)
    fired, skipped = await _each_slot_once(client, schedule_id, slots)
    assert skipped == [] and len(fired) == 5
    windows = await _check_runs(client, schedule, tag, fired)
    assert all(w[2] is RunStatus.COMPLETED for w in windows)
    assert (schedule.total_runs, schedule.successful_runs, schedule.skipped_runs) == (5, 5, 0)
    assert schedule.status is ScheduleStatus.ACTIVE
    assert schedule.last_run_id == fired[-1]["workflow_run_id"]
    late = [(w[0] - slot).total_seconds() for slot, w in zip(slots, windows, strict=True)]
    shown = ", ".join(f"{x * 1000:.0f}" for x in late)
    print(f"\ninterval {seconds}s x 5: each run started {shown} ms after its slot")
    # A slot must fire before the next tick would have (generous for a slow machine).
    assert all(0 <= x < 1.5 for x in late), late


# ------------------------------------------------------------------ overlap policies


def _overlapping(windows: list[tuple[datetime, datetime, RunStatus]]) -> bool:
    spans = sorted((w[0], w[1]) for w in windows)
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


async def test_skip_skips_slots_while_a_run_is_going(
    cluster: Cluster, client: StorageBackend
) -> None:
    tag = _tag()
    schedule_id, slots = await _every(
        client, "celery_sched_slow", tag, 2.0, seconds=1, slots=6, policy=OverlapPolicy.SKIP
    )
    schedule = await _settled(client, schedule_id)
    fired, skipped = await _each_slot_once(client, schedule_id, slots)
    windows = await _check_runs(client, schedule, tag, fired)
    assert not _overlapping(windows), windows
    assert {e["reason"] for e in skipped} == {OVERLAP}, skipped
    assert all(e["overlap_policy"] == "skip" for e in skipped)
    # A slot was skipped only while a run was going, and fired as soon as none was.
    for event in skipped:
        at = _at(event["skipped_at"])
        assert any(start <= at <= end for start, end, _ in windows), (event, windows)
    for event, (start, _, _) in zip(fired, windows, strict=True):
        assert all(end <= start for other, end, _ in windows if other < start), event
    assert _slot_index(slots, fired[0]["scheduled_time"]) == 0
    assert len(fired) >= 2 and len(skipped) >= 2, (fired, skipped)
    # The first slot after the first run ended was fired, not skipped.
    after = next(i for i, slot in enumerate(slots) if slot > windows[0][1])
    assert _slot_index(slots, fired[1]["scheduled_time"]) == after
    assert schedule.skipped_runs == len(skipped) and schedule.total_runs == len(fired)
    assert all(w[2] is RunStatus.COMPLETED for w in windows)
    # The slow step ran on the step workers, not in the workflow worker.
    assert {pid for _, pid, _, _ in bodies(tag)} <= set(descendants(cluster.procs["steps"].pid))
    print(f"\nSKIP, 2 s runs every 1 s: fired {len(fired)}, skipped {len(skipped)} of 6 slots")


async def test_buffer_one_and_buffer_all(client: StorageBackend) -> None:
    """Runs of 2.5 s on slots 1 s apart: the slots that come while a run is going are
    buffered (BUFFER_ONE: one of them, the rest skipped), and a buffered run starts
    as soon as the previous run ends."""
    tags = {OverlapPolicy.BUFFER_ONE: _tag(), OverlapPolicy.BUFFER_ALL: _tag()}
    made = {
        policy: await _every(
            client, "celery_sched_slow", tag, 2.5, seconds=1, slots=3, policy=policy
        )
        for policy, tag in tags.items()
    }
    for policy, (schedule_id, slots) in made.items():
        schedule = await _settled(client, schedule_id)
        fired, skipped = await _fired(client, schedule_id), await _skipped(client, schedule_id)
        windows = await _check_runs(client, schedule, tags[policy], fired)
        assert all(w[2] is RunStatus.COMPLETED for w in windows)
        assert not _overlapping(windows), windows
        assert _slot_index(slots, fired[0]["scheduled_time"]) == 0
        gaps = [(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(windows)]
        print(f"\n{policy.value}: {len(fired)} runs, each buffered one started {gaps} s later")
        assert all(0 <= gap < 1.5 for gap in gaps), gaps  # at the next tick
        if policy is OverlapPolicy.BUFFER_ONE:
            assert len(fired) == 2, fired
            assert [(_slot_index(slots, e["scheduled_time"]), e["reason"]) for e in skipped] == [
                (2, OVERLAP)
            ]
        else:
            assert len(fired) == 3 and skipped == [], (fired, skipped)
        assert schedule.skipped_runs == len(skipped) and schedule.buffered_count == 0


async def test_cancel_other_and_allow_all(client: StorageBackend) -> None:
    """Runs that nap 2.5 s on slots 1 s apart: CANCEL_OTHER cancels the going run at
    each slot and starts a new one; ALLOW_ALL lets them all run at once."""
    tags = {OverlapPolicy.CANCEL_OTHER: _tag(), OverlapPolicy.ALLOW_ALL: _tag()}
    made = {
        policy: await _every(
            client, "celery_sched_nap", tag, 2.5, seconds=1, slots=3, policy=policy
        )
        for policy, tag in tags.items()
    }
    for policy, (schedule_id, slots) in made.items():
        schedule = await _settled(client, schedule_id)
        fired, skipped = await _each_slot_once(client, schedule_id, slots)
        assert len(fired) == 3 and skipped == []
        windows = await _check_runs(client, schedule, tags[policy], fired)
        statuses = [w[2].value for w in windows]
        if policy is OverlapPolicy.ALLOW_ALL:
            assert statuses == ["completed"] * 3
            assert windows[2][0] < windows[0][1], "the three runs never overlapped"
            assert schedule.successful_runs == 3
        else:
            # The going run is asked to cancel, and ends, as the next one starts.
            assert statuses == ["cancelled", "cancelled", "completed"]
            for event, (_, end, _), newer in zip(fired, windows, fired[1:], strict=False):
                # (How late slots fire is test_interval_schedule_fires_each_slot_on_time's.)
                fired_at = _at(newer["actual_time"])
                assert 0 <= (end - fired_at).total_seconds() < 1.5, (end, newer)
                ended = await _event(client, event["workflow_run_id"], "workflow.cancelled")
                assert "(cancel_other)" in ended.data["reason"], ended.data
            assert (schedule.successful_runs, schedule.failed_runs) == (1, 0)
        print(f"\n{policy.value}: {statuses}")


# ------------------------------------------------------------------ Beat and workers


async def test_two_beats_fire_each_slot_once(cluster: Cluster, client: StorageBackend) -> None:
    tag = _tag()
    cluster.beat("beat2")
    try:
        schedule_id, slots = await _every(client, "celery_sched_quick", tag, seconds=1, slots=6)
        schedule = await _settled(client, schedule_id)
        assert "Sending due task pyworkflow.tick" in cluster.log("beat2")
    finally:
        cluster.kill("beat2")
    fired, skipped = await _each_slot_once(client, schedule_id, slots)
    assert len(fired) == 6 and skipped == []
    windows = await _check_runs(client, schedule, tag, fired)
    assert all(w[2] is RunStatus.COMPLETED for w in windows)
    assert (schedule.total_runs, schedule.successful_runs) == (6, 6)


async def test_killed_workflow_worker_fires_no_slot_twice(
    cluster: Cluster, client: StorageBackend
) -> None:
    """SIGKILL the worker that fires schedules and runs activations, with three
    schedules firing every second; restart it. A slot whose message died with the
    worker is sent again once its timer is re-armed (by the end of the schedule's
    run) or its 30 s claim expires; slots overdue by more than the grace by then are
    skipped as missed. Nothing fires twice, and nothing is skipped without a reason."""
    tags = [_tag() for _ in range(3)]
    made = [await _every(client, "celery_sched_quick", tag, seconds=1, slots=8) for tag in tags]

    async def fired_twice_each() -> bool:
        return all([len(await _fired(client, sid)) >= 2 for sid, _ in made])

    await eventually(fired_twice_each, timeout=10, message="the schedules never fired")
    cluster.kill("wf")
    killed = datetime.now(UTC)
    cluster.restart("wf")
    for (schedule_id, slots), tag in zip(made, tags, strict=True):
        schedule = await _settled(client, schedule_id, timeout=60)
        fired, skipped = await _each_slot_once(client, schedule_id, slots)
        windows = await _check_runs(client, schedule, tag, fired)
        assert all(w[2] is RunStatus.COMPLETED for w in windows)
        # Skipped only as the policies say: a slot overdue by more than the grace when
        # the worker was back (missed), or (SKIP) a slot that came while the previous
        # run was still going (e.g. its start had died with the worker and waited for
        # its resume guard).
        for event in skipped:
            at = _at(event["skipped_at"])
            if event["reason"] == MISSED:
                assert _at(event["scheduled_time"]) < at - timedelta(seconds=GRACE), event
            else:
                assert event["reason"] == OVERLAP, event
                assert any(
                    _at(e["actual_time"]) <= at <= end
                    for e, (_, end, _) in zip(fired, windows, strict=True)
                ), (event, fired, windows)
        assert schedule.skipped_runs == len(skipped)
        marks = {_slot_index(slots, e["scheduled_time"]): "f" for e in fired}
        marks |= {_slot_index(slots, e["scheduled_time"]): e["reason"][0] for e in skipped}
        late = max((_at(e["actual_time"]) - killed).total_seconds() for e in fired)
        shown = "".join(marks[i] for i in range(len(slots)))
        print(f"\nworker killed: slots {shown} (fired/missed/a run going), last {late:.1f}s later")


async def test_slots_missed_while_beat_is_down(cluster: Cluster, client: StorageBackend) -> None:
    """With no Beat for several slots: when it is back, the slots older than the grace
    (``PYWORKFLOW_SCHEDULE_GRACE_SECONDS``, 2 s here) are skipped as missed, the
    oldest slot within it fires the one catch-up run (the later ones are only late:
    SKIP skips them, its run is going), then the schedule goes on."""
    tag = _tag()
    schedule_id, slots = await _every(client, "celery_sched_quick", tag, seconds=1, slots=10)

    async def fired(count: int) -> bool:
        return len(await _fired(client, schedule_id)) >= count

    await eventually(lambda: fired(2), timeout=10, message="the schedule never fired")
    cluster.kill("beat")
    try:
        await eventually(lambda: datetime.now(UTC) > slots[6], timeout=10, interval=0.05)
    finally:
        back = datetime.now(UTC)
        cluster.restart("beat")
    schedule = await _settled(client, schedule_id)
    fired_events, skipped = await _each_slot_once(client, schedule_id, slots)
    windows = await _check_runs(client, schedule, tag, fired_events)
    assert all(w[2] is RunStatus.COMPLETED for w in windows)
    assert schedule.skipped_runs == len(skipped)
    # One catch-up run for the slots due while Beat was down.
    late = [e for e in fired_events if _at(e["actual_time"]) > back]
    (catch_up,) = [e for e in late if _at(e["scheduled_time"]) < back]
    caught = _slot_index(slots, catch_up["scheduled_time"])
    horizon = _at(catch_up["actual_time"]) - timedelta(seconds=GRACE)
    missed = sorted(
        _slot_index(slots, e["scheduled_time"]) for e in skipped if e["reason"] == MISSED
    )
    assert len(missed) >= 2 and missed == list(range(missed[0], caught)), (missed, caught)
    assert all(slots[i] < horizon for i in missed) and slots[caught] >= horizon
    overlapped = sorted(
        _slot_index(slots, e["scheduled_time"]) for e in skipped if e["reason"] == OVERLAP
    )
    # Slots after the catch-up either fired or were skipped because a run was still
    # going (which ones depends on how long the catch-up run took): each exactly once.
    assert all(caught < i for i in overlapped), (overlapped, caught)
    after = [_slot_index(slots, e["scheduled_time"]) for e in late[1:]]
    assert sorted(after + overlapped) == list(range(caught + 1, 10)), (after, overlapped)
    print(
        f"\nBeat down {(back - slots[1]).total_seconds():.1f}s: slots {missed} missed, "
        f"{caught} caught up, {overlapped} skipped (SKIP)"
    )


# ------------------------------------------------------------------ from the client


async def test_trigger_schedule_from_the_client(client: StorageBackend) -> None:
    tag = _tag()
    schedule = await create_schedule(
        "celery_sched_quick", ScheduleSpec(cron="0 0 1 1 *"), tag, storage=client
    )
    run_id = await trigger_schedule(schedule.schedule_id)

    async def counted() -> Schedule | None:
        s = await client.get_schedule(schedule.schedule_id)
        return s if s is not None and s.successful_runs == 1 else None

    after: Schedule = await eventually(counted, timeout=15, message="the run was never counted")
    assert (await _window(client, run_id))[2] is RunStatus.COMPLETED
    assert [r for r, _, _, _ in bodies(tag)] == [run_id]
    assert (after.total_runs, after.running_run_ids, after.last_run_id) == (1, [], run_id)
    assert after.next_run_time == schedule.next_run_time  # the next slot is unchanged
    (event,) = await _fired(client, schedule.schedule_id)
    assert event["workflow_run_id"] == run_id


async def test_backfill_30_days_of_a_daily_cron(client: StorageBackend) -> None:
    tag = _tag()
    schedule = await create_schedule(
        "celery_sched_quick", ScheduleSpec(cron="0 6 * * *"), tag, storage=client
    )
    begin = datetime(2026, 1, 1, tzinfo=UTC)
    run_ids = await backfill_schedule(schedule.schedule_id, begin, begin + timedelta(days=30))
    assert len(set(run_ids)) == 30
    began = time.monotonic()

    async def all_done() -> bool:
        runs = [await client.get_run(run_id) for run_id in run_ids]
        return all(r is not None and r.status in TERMINAL_STATUSES for r in runs)

    await eventually(all_done, timeout=30, interval=0.1, message="backfilled runs never ended")
    took = time.monotonic() - began
    assert all([(await _window(client, r))[2] is RunStatus.COMPLETED for r in run_ids])
    assert sorted(r for r, _, _, _ in bodies(tag)) == sorted(run_ids)
    started, completed = await client.get_events(schedule.schedule_id)
    assert started.type.value == "schedule.backfill_started" and started.data["expected_runs"] == 30
    assert completed.type.value == "schedule.backfill_completed"
    assert completed.data["run_ids"] == run_ids
    # The same range again starts nothing new.
    again = await backfill_schedule(schedule.schedule_id, begin, begin + timedelta(days=30))
    assert again == run_ids and len(bodies(tag)) == 30
    after = await client.get_schedule(schedule.schedule_id)
    assert after is not None and after.total_runs == 0  # backfills are not the schedule's runs
    print(f"\nbackfill of 30 daily slots: 30 runs completed on the workers in {took:.1f}s")


async def test_beat_activates_scheduled_workflows(store: StorageBackend) -> None:
    """``@scheduled_workflow`` declares a schedule; the workers' first tick creates it
    (upstream's Beat did, API.md §5.4)."""
    schedule = await store.get_schedule("auto_celery_sched_new_year")
    assert schedule is not None, "nobody called activate_scheduled_workflows"
    assert schedule.status is ScheduleStatus.ACTIVE and schedule.spec.cron == "0 0 1 1 *"
    assert schedule.next_run_time is not None and schedule.next_run_time.month == 1
