"""Conformance tests for the event log, commits, leases and timers.

Part of :class:`pyworkflow.testing.conformance.StorageConformance`; see that module
for how to use the suite.

Example:
    >>> "test_sequence_conflict_writes_nothing" in dir(EventConformance)
    True
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pyworkflow.engine.events import (
    Event,
    EventType,
    create_hook_expired_event,
    create_hook_received_event,
    create_step_completed_event,
    create_step_started_event,
)
from pyworkflow.storage.base import (
    CommitBatch,
    DuplicateEventError,
    HookUpdate,
    RunAlreadyExistsError,
    RunEndedError,
    RunUpdate,
    SequenceConflictError,
    StorageBackend,
)
from pyworkflow.storage.schemas import Hook, HookStatus, RunStatus, Timer
from pyworkflow.testing.conformance_catalog import make_run, now

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _event(run_id: str, n: int = 0) -> Event:
    return create_step_started_event(run_id, f"step_{n}", "s", "[]", "{}")


def _timer(run_id: str, key: str, fire_at: datetime) -> Timer:
    return Timer(run_id=run_id, kind="sleep", key=key, fire_at=fire_at)


async def _seqs(storage: StorageBackend, run_id: str) -> list[int | None]:
    return [e.sequence for e in await storage.get_events(run_id)]


class EventConformance:
    """The event log: sequences, filters, de-duplication and atomic commits."""

    async def test_sequences_from_zero_without_run_row(self, storage: StorageBackend) -> None:
        events = [_event("sched_abc", i) for i in range(3)]
        for event in events:
            await storage.record_event(event)
        assert [e.sequence for e in events] == [0, 1, 2]
        stored = await storage.get_events("sched_abc")
        assert [(e.event_id, e.sequence) for e in stored] == [
            (e.event_id, i) for i, e in enumerate(events)
        ]
        assert await storage.get_events("other") == []

    async def test_event_round_trip(self, storage: StorageBackend) -> None:
        event = Event(
            run_id="run_e",
            type=EventType.HOOK_CREATED,
            timestamp=T0 + timedelta(microseconds=7),
            data={"hook_id": "h", "nested": {"a": [1, None, "x"]}, "n": 1.5},
        )
        await storage.record_event(event)
        [stored] = await storage.get_events("run_e")
        assert stored == event

    async def test_filters_latest_and_after(self, storage: StorageBackend) -> None:
        await storage.record_event(_event("r", 0))
        await storage.record_event(create_step_completed_event("r", "step_0", "1", "s"))
        await storage.record_event(_event("r", 1))
        completed = await storage.get_events("r", ["step.completed"])
        assert [e.sequence for e in completed] == [1]
        both = await storage.get_events("r", ["step.completed", "step.started"])
        assert [e.sequence for e in both] == [0, 1, 2]
        latest = await storage.get_latest_event("r")
        assert latest is not None and latest.sequence == 2
        latest = await storage.get_latest_event("r", "step.completed")
        assert latest is not None and latest.sequence == 1
        assert await storage.get_latest_event("r", "workflow.failed") is None
        assert await storage.get_latest_event("missing") is None
        assert [e.sequence for e in await storage.get_events_after("r", 0)] == [1, 2]
        assert await storage.get_events_after("r", 2) == []

    async def test_concurrent_record_event_gap_free(self, storage: StorageBackend) -> None:
        events = [_event("run_c", i) for i in range(20)]
        await asyncio.gather(*(storage.record_event(e) for e in events))
        assert sorted(e.sequence for e in events if e.sequence is not None) == list(range(20))
        assert await _seqs(storage, "run_c") == list(range(20))

    async def test_commit_expected_sequence(self, storage: StorageBackend) -> None:
        first = [_event("r", 0), _event("r", 1)]
        await storage.commit(CommitBatch("r", events=first, expected_sequence=-1))
        assert [e.sequence for e in first] == [0, 1]
        await storage.commit(CommitBatch("r", events=[_event("r", 2)], expected_sequence=1))
        await storage.commit(CommitBatch("r", events=[_event("r", 3)]))  # append after last
        assert await _seqs(storage, "r") == [0, 1, 2, 3]

    async def test_sequence_conflict_writes_nothing(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("r"))
        await storage.commit(CommitBatch("r", events=[_event("r", 0), _event("r", 1)]))
        stale = _event("r", 2)
        batch = CommitBatch(
            "r",
            events=[stale],
            expected_sequence=0,
            run_update=RunUpdate(status=RunStatus.COMPLETED),
            timers_upsert=[_timer("r", "t", now())],
        )
        with pytest.raises(SequenceConflictError):
            await storage.commit(batch)
        assert stale.sequence is None
        assert await _seqs(storage, "r") == [0, 1]
        run = await storage.get_run("r")
        assert run is not None and run.status is RunStatus.PENDING
        assert await storage.list_timers("r") == []

    async def test_duplicate_step_result_rejected(self, storage: StorageBackend) -> None:
        await storage.record_event(create_step_completed_event("r", "step_x", "1", "s"))
        again = create_step_completed_event("r", "step_x", "2", "s")
        with pytest.raises(DuplicateEventError):
            await storage.commit(CommitBatch("r", events=[_event("r", 9), again]))
        assert await _seqs(storage, "r") == [0]
        twice = [create_step_completed_event("q", "s", str(i), "s") for i in range(2)]
        with pytest.raises(DuplicateEventError):
            await storage.commit(CommitBatch("q", events=twice))
        assert await storage.get_events("q") == []
        # the same step id in another run is a different step
        await storage.record_event(create_step_completed_event("other", "step_x", "1", "s"))

    async def test_hook_outcome_recorded_once(self, storage: StorageBackend) -> None:
        await storage.record_event(create_hook_received_event("r", "hook_1", '"p"'))
        with pytest.raises(DuplicateEventError):
            await storage.record_event(create_hook_expired_event("r", "hook_1"))
        with pytest.raises(DuplicateEventError):
            await storage.record_event(create_hook_received_event("r", "hook_1", '"q"'))
        assert await _seqs(storage, "r") == [0]

    async def test_failed_commit_changes_nothing(self, storage: StorageBackend) -> None:
        hook = Hook(hook_id="h1", run_id="r", token="r:tok1")
        await storage.commit(
            CommitBatch(
                "r",
                events=[create_step_completed_event("r", "s1", "1", "s")],
                create_run=make_run("r"),
                timers_upsert=[_timer("r", "t1", T0)],
                hooks_create=[hook],
            )
        )
        before = (
            await storage.get_run("r"),
            await storage.list_timers(),
            await storage.list_hooks(),
        )
        failing = CommitBatch(
            "r",
            events=[_event("r", 1), create_step_completed_event("r", "s1", "2", "s")],
            run_update=RunUpdate(status=RunStatus.FAILED, error="x"),
            timers_upsert=[_timer("r", "t2", T0)],
            clear_timers=True,
            hooks_create=[Hook(hook_id="h2", run_id="r", token="r:tok2")],
            hook_updates=[HookUpdate("h1", HookStatus.RECEIVED, '"p"')],
        )
        with pytest.raises(DuplicateEventError):
            await storage.commit(failing)
        after = (
            await storage.get_run("r"),
            await storage.list_timers(),
            await storage.list_hooks(),
        )
        assert after == before
        assert await _seqs(storage, "r") == [0]
        assert await storage.get_hook_by_token("r:tok2") is None

    async def test_commit_creates_run_with_lease(self, storage: StorageBackend) -> None:
        start = _event("r", 0)
        await storage.commit(
            CommitBatch(
                "r", [start], -1, create_run=make_run("r"), lease_owner="w1", lease_seconds=60
            )
        )
        lease = await storage.get_run_lease("r")
        assert lease is not None and lease.owner == "w1" and lease.expires_at > now()
        with pytest.raises(RunAlreadyExistsError):
            await storage.commit(CommitBatch("r", [_event("r", 1)], create_run=make_run("r")))
        assert await _seqs(storage, "r") == [0]

    async def test_commit_run_update(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("r", result="keep", updated_at=T0))
        assert await storage.acquire_run_lease("r", "w1", 60, now())
        started = T0 + timedelta(minutes=1)
        update = RunUpdate(status=RunStatus.RUNNING, started_at=started, release_lease="w2")
        await storage.commit(CommitBatch("r", run_update=update))
        run = await storage.get_run("r")
        assert run is not None and run.status is RunStatus.RUNNING and run.started_at == started
        assert run.result == "keep" and run.error is None and run.updated_at > T0
        assert await storage.get_run_lease("r") is not None  # w2 never held it
        update = RunUpdate(status=RunStatus.COMPLETED, result="[1]", release_lease="w1")
        await storage.commit(CommitBatch("r", run_update=update))
        run = await storage.get_run("r")
        assert run is not None and run.result == "[1]" and run.status is RunStatus.COMPLETED
        assert await storage.get_run_lease("r") is None

    async def test_commit_timers(self, storage: StorageBackend) -> None:
        await storage.commit(
            CommitBatch(
                "r", timers_upsert=[_timer("r", "b", T0 + timedelta(2)), _timer("r", "a", T0)]
            )
        )
        await storage.commit(CommitBatch("q", timers_upsert=[_timer("q", "c", T0 + timedelta(1))]))
        assert [t.key for t in await storage.list_timers()] == ["a", "c", "b"]
        assert [t.key for t in await storage.list_timers("r")] == ["a", "b"]
        claimed = await storage.claim_due_timers(T0 + timedelta(3), "s1", 30)
        assert len(claimed) == 3
        # replacing a timer resets its claim
        await storage.commit(CommitBatch("r", timers_upsert=[_timer("r", "a", T0)]))
        [a, _] = await storage.list_timers("r")
        assert (a.claimed_by, a.claimed_until) == (None, None)
        await storage.commit(CommitBatch("r", timers_delete=[a.timer_id]))
        assert [t.key for t in await storage.list_timers("r")] == ["b"]
        await storage.commit(
            CommitBatch("r", clear_timers=True, timers_upsert=[_timer("r", "z", T0)])
        )
        assert [t.key for t in await storage.list_timers()] == ["z", "c"]

    async def test_commit_hooks(self, storage: StorageBackend) -> None:
        hook = Hook(hook_id="h1", run_id="r", token="r:secret", name="approval")
        await storage.commit(CommitBatch("r", hooks_create=[hook]))
        change = HookUpdate("h1", HookStatus.RECEIVED, payload='{"ok": true}')
        await storage.commit(CommitBatch("r", hook_updates=[change]))
        stored = await storage.get_hook_by_token("r:secret")
        assert stored is not None and stored.status is HookStatus.RECEIVED
        assert stored.payload == '{"ok": true}' and stored.received_at is not None

    async def test_require_open_refuses_an_ended_run(self, storage: StorageBackend) -> None:
        await storage.commit(CommitBatch("r", events=[Event(run_id="r")], expected_sequence=-1))
        late = create_step_completed_event("r", "s1", "1", "a")
        await storage.commit(CommitBatch("r", events=[late], require_open=True))
        done = Event(run_id="r", type=EventType.WORKFLOW_CANCELLED, data={})
        await storage.commit(CommitBatch("r", events=[done]))
        after = create_step_completed_event("r", "s2", "2", "a")
        timer = Timer("r", "guard", "resume", T0)
        with pytest.raises(RunEndedError):
            await storage.commit(
                CommitBatch("r", events=[after], timers_upsert=[timer], require_open=True)
            )
        assert [e.type for e in await storage.get_events("r")][-1] is EventType.WORKFLOW_CANCELLED
        assert await storage.list_timers("r") == []


class LeaseTimerConformance:
    """Activation leases, stale runs and durable timers."""

    async def test_lease_rules(self, storage: StorageBackend) -> None:
        t = now()
        assert not await storage.acquire_run_lease("missing", "w1", 30, t)
        await storage.create_run(make_run("r"))
        assert await storage.get_run_lease("r") is None
        assert await storage.acquire_run_lease("r", "w1", 30, t)
        assert not await storage.acquire_run_lease("r", "w2", 30, t + timedelta(seconds=10))
        assert await storage.acquire_run_lease("r", "w1", 30, t + timedelta(seconds=10))  # renews
        lease = await storage.get_run_lease("r")
        assert lease is not None and lease.expires_at == t + timedelta(seconds=40)
        assert not await storage.acquire_run_lease("r", "w2", 30, t + timedelta(seconds=39))
        assert await storage.acquire_run_lease("r", "w2", 30, t + timedelta(seconds=40))  # expired
        assert not await storage.acquire_run_lease("r", "w3", 30, t, steal_from="w1")
        assert await storage.acquire_run_lease("r", "w3", 30, t, steal_from="w2")
        lease = await storage.get_run_lease("r")
        assert lease is not None and lease.owner == "w3"

    async def test_begin_activation_marks_running(self, storage: StorageBackend) -> None:
        t = now()
        await storage.create_run(make_run("asleep", status=RunStatus.SUSPENDED))
        await storage.create_run(make_run("ended", status=RunStatus.COMPLETED))
        assert not await storage.begin_activation("missing", "w1", 30, t)
        assert await storage.begin_activation("asleep", "w1", 30, t)
        run = await storage.get_run("asleep")
        lease = await storage.get_run_lease("asleep")
        assert run is not None and run.status is RunStatus.RUNNING
        assert lease is not None and lease.owner == "w1"
        await storage.update_run_status("asleep", RunStatus.SUSPENDED)
        assert not await storage.begin_activation("asleep", "w2", 30, t)  # w1 holds it
        run = await storage.get_run("asleep")
        assert run is not None and run.status is RunStatus.SUSPENDED
        assert await storage.begin_activation("ended", "w1", 30, t)  # the caller checks
        run = await storage.get_run("ended")
        assert run is not None and run.status is RunStatus.COMPLETED

    async def test_renew_and_release(self, storage: StorageBackend) -> None:
        t = now()
        await storage.create_run(make_run("r"))
        assert not await storage.renew_run_lease("r", "w1", 30, t)
        assert await storage.acquire_run_lease("r", "w1", 30, t)
        assert await storage.renew_run_lease("r", "w1", 60, t)
        lease = await storage.get_run_lease("r")
        assert lease is not None and lease.expires_at == t + timedelta(seconds=60)
        assert not await storage.renew_run_lease("r", "w2", 60, t)
        await storage.release_run_lease("r", "w2")  # not the holder: nothing happens
        assert await storage.get_run_lease("r") is not None
        await storage.release_run_lease("r", "w1")
        assert await storage.get_run_lease("r") is None

    async def test_stale_runs(self, storage: StorageBackend) -> None:
        t = now()
        for run_id in ("free", "live", "expired"):
            await storage.create_run(make_run(run_id, status=RunStatus.RUNNING))
        await storage.create_run(make_run("asleep", status=RunStatus.SUSPENDED))
        # A recovery's activation that died (INTERRUPTED) is as stale as any other.
        await storage.create_run(make_run("recovering", status=RunStatus.INTERRUPTED))
        assert await storage.acquire_run_lease("live", "w", 60, t)
        assert await storage.acquire_run_lease("expired", "w", 5, t - timedelta(seconds=10))
        assert await storage.acquire_run_lease("recovering", "w", 5, t - timedelta(seconds=10))
        assert sorted(await storage.list_stale_runs(t)) == ["expired", "free", "recovering"]
        assert len(await storage.list_stale_runs(t, limit=1)) == 1

    async def test_claim_due_timers(self, storage: StorageBackend) -> None:
        timers = [_timer("r", f"t{i}", T0 + timedelta(seconds=i)) for i in range(5)]
        await storage.commit(CommitBatch("r", timers_upsert=list(reversed(timers))))
        claimed = await storage.claim_due_timers(T0 + timedelta(seconds=3), "s1", 10, limit=3)
        assert [c.key for c in claimed] == ["t0", "t1", "t2"]
        assert all(c.claimed_by == "s1" for c in claimed)
        assert all(c.claimed_until == T0 + timedelta(seconds=13) for c in claimed)
        again = await storage.claim_due_timers(T0 + timedelta(seconds=4), "s2", 10)
        assert [c.key for c in again] == ["t3", "t4"]
        assert await storage.claim_due_timers(T0 + timedelta(seconds=12), "s2", 10) == []
        expired = await storage.claim_due_timers(T0 + timedelta(seconds=13), "s2", 10)
        assert [c.key for c in expired] == ["t0", "t1", "t2"]

    async def test_concurrent_claims_never_overlap(self, storage: StorageBackend) -> None:
        timers = [_timer(f"r{i % 5}", f"t{i}", T0) for i in range(40)]
        for run_id in {t.run_id for t in timers}:
            mine = [t for t in timers if t.run_id == run_id]
            await storage.commit(CommitBatch(run_id, timers_upsert=mine))

        async def claimer(name: str) -> list[str]:
            got: list[str] = []
            while batch := await storage.claim_due_timers(T0, name, 60, limit=3):
                got.extend(t.timer_id for t in batch)
            return got

        results = await asyncio.gather(*(claimer(f"s{i}") for i in range(6)))
        flat = [timer_id for got in results for timer_id in got]
        assert sorted(flat) == sorted(t.timer_id for t in timers)

    async def test_next_timer_due(self, storage: StorageBackend) -> None:
        assert await storage.next_timer_due() is None
        await storage.commit(
            CommitBatch(
                "r", timers_upsert=[_timer("r", "a", T0), _timer("r", "b", T0 + timedelta(60))]
            )
        )
        assert await storage.next_timer_due() == T0
        await storage.claim_due_timers(T0, "s", 30)
        assert await storage.next_timer_due() == T0 + timedelta(seconds=30)
