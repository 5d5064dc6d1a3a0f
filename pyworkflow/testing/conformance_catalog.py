"""Conformance tests for steps, hooks, cancellation flags and schedules.

Part of :class:`pyworkflow.testing.conformance.StorageConformance`; see that module
for how to use the suite.

Example:
    >>> make_run("run_1").workflow_name
    'wf'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import (
    CalendarSpec,
    Hook,
    HookStatus,
    OverlapPolicy,
    RunStatus,
    Schedule,
    ScheduleSpec,
    ScheduleStatus,
    StepExecution,
    StepStatus,
    WorkflowRun,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def make_run(run_id: str, **fields: Any) -> WorkflowRun:
    """A PENDING run of workflow ``wf`` with ``fields`` overridden."""
    values: dict[str, Any] = {"workflow_name": "wf", "status": RunStatus.PENDING}
    values.update(fields)
    return WorkflowRun(run_id=run_id, **values)


def make_schedule(schedule_id: str, **fields: Any) -> Schedule:
    """An ACTIVE hourly schedule of ``wf`` with ``fields`` overridden."""
    values: dict[str, Any] = {"workflow_name": "wf", "spec": ScheduleSpec(interval="1h")}
    values.update(fields)
    return Schedule(schedule_id=schedule_id, **values)


def _hook(run_id: str, hook_id: str, created: datetime, **fields: Any) -> Hook:
    return Hook(
        hook_id=hook_id, run_id=run_id, token=f"{run_id}:{hook_id}", created_at=created, **fields
    )


class CatalogConformance:
    """Steps, hooks, cancellation flags and schedules."""

    async def test_steps(self, storage: StorageBackend) -> None:
        step = StepExecution(
            step_id="step_a",
            run_id="r",
            step_name="a",
            status=StepStatus.RUNNING,
            attempt=2,
            input_args="[1]",
            created_at=T0,
            retry_after=T0 + timedelta(seconds=5),
            retry_delay="5s",
        )
        await storage.create_step(step)
        await storage.create_step(
            StepExecution("step_b", "r", "b", StepStatus.PENDING, created_at=T0 + timedelta(1))
        )
        await storage.create_step(StepExecution("step_c", "other", "c", StepStatus.PENDING))
        assert await storage.get_step("step_a") == step
        assert await storage.get_step("missing") is None
        await storage.update_step_status("step_a", "completed", result='"ok"')
        stored = await storage.get_step("step_a")
        assert stored is not None and stored.status is StepStatus.COMPLETED
        assert stored.result == '"ok"' and stored.completed_at is not None
        await storage.update_step_status("step_b", "failed", error="bad")
        stored = await storage.get_step("step_b")
        assert stored is not None and stored.error == "bad"
        assert [s.step_id for s in await storage.list_steps("r")] == ["step_a", "step_b"]

    async def test_hook_round_trip_and_lookup(self, storage: StorageBackend) -> None:
        hook = _hook(
            "r1",
            "hook_1",
            T0,
            url="https://example.test/h",
            expires_at=T0 + timedelta(hours=1),
            name="approval",
            payload_schema='{"type": "object"}',
            metadata={"who": "ops"},
        )
        await storage.create_hook(hook)
        assert await storage.get_hook("hook_1") == hook
        assert await storage.get_hook("hook_1", "r1") == hook
        assert await storage.get_hook_by_token("r1:hook_1") == hook
        assert await storage.get_hook("missing") is None
        assert await storage.get_hook_by_token("r1:wrong") is None
        # hook ids repeat across runs; run_id picks one
        await storage.create_hook(_hook("r2", "hook_1", T0 + timedelta(1)))
        other = await storage.get_hook("hook_1", "r2")
        assert other is not None and other.run_id == "r2"
        assert await storage.get_hook("hook_1", "r3") is None

    async def test_update_hook_status(self, storage: StorageBackend) -> None:
        await storage.create_hook(_hook("r", "h", T0))
        await storage.update_hook_status("h", HookStatus.RECEIVED, payload='{"a": 1}')
        hook = await storage.get_hook("h", "r")
        assert hook is not None and hook.status is HookStatus.RECEIVED
        assert hook.payload == '{"a": 1}' and hook.received_at is not None
        await storage.update_hook_status("h", HookStatus.DISPOSED)
        hook = await storage.get_hook("h", "r")
        assert (
            hook is not None and hook.status is HookStatus.DISPOSED and hook.payload == '{"a": 1}'
        )

    async def test_list_hooks(self, storage: StorageBackend) -> None:
        for i in range(4):
            await storage.create_hook(_hook("r1" if i < 3 else "r2", f"h{i}", T0 + timedelta(i)))
        await storage.update_hook_status("h1", HookStatus.EXPIRED)
        assert [h.hook_id for h in await storage.list_hooks()] == ["h3", "h2", "h1", "h0"]
        assert [h.hook_id for h in await storage.list_hooks(run_id="r1")] == ["h2", "h1", "h0"]
        expired = await storage.list_hooks(status=HookStatus.EXPIRED)
        assert [h.hook_id for h in expired] == ["h1"]
        page = await storage.list_hooks(limit=2, offset=1)
        assert [h.hook_id for h in page] == ["h2", "h1"]

    async def test_cancellation_flags(self, storage: StorageBackend) -> None:
        assert not await storage.check_cancellation_flag("no_row")
        await storage.clear_cancellation_flag("no_row")  # clearing an unset flag is fine
        await storage.set_cancellation_flag("no_row")
        await storage.set_cancellation_flag("no_row")
        assert await storage.check_cancellation_flag("no_row")
        assert not await storage.check_cancellation_flag("other")
        await storage.clear_cancellation_flag("no_row")
        assert not await storage.check_cancellation_flag("no_row")

    async def test_schedule_round_trip(self, storage: StorageBackend) -> None:
        spec = ScheduleSpec(
            calendar=[
                CalendarSpec(second=5, minute=30, hour=9, day_of_week=0),
                CalendarSpec(day_of_month=1),
            ],
            timezone="Europe/Paris",
            start_at=T0,
            end_at=T0 + timedelta(days=365),
            jitter="30s",
        )
        schedule = Schedule(
            schedule_id="sched_full",
            workflow_name="report",
            spec=spec,
            status=ScheduleStatus.PAUSED,
            args='[1, "x"]',
            kwargs='{"k": true}',
            overlap_policy=OverlapPolicy.BUFFER_ALL,
            created_at=T0,
            updated_at=T0 + timedelta(seconds=1),
            last_run_at=T0 + timedelta(hours=1),
            next_run_time=T0 + timedelta(hours=2),
            last_run_id="run_9",
            running_run_ids=["run_8", "run_9"],
            buffered_count=2,
            total_runs=10,
            successful_runs=7,
            failed_runs=2,
            skipped_runs=1,
        )
        await storage.create_schedule(schedule)
        assert await storage.get_schedule("sched_full") == schedule
        assert await storage.get_schedule("missing") is None
        cron = make_schedule("sched_cron", spec=ScheduleSpec(cron="0 9 * * *"))
        await storage.create_schedule(cron)
        assert await storage.get_schedule("sched_cron") == cron

    async def test_schedule_crud(self, storage: StorageBackend) -> None:
        schedule = make_schedule("s1")
        await storage.create_schedule(schedule)
        with pytest.raises(ValueError):
            await storage.create_schedule(make_schedule("s1"))
        schedule.status = ScheduleStatus.PAUSED
        schedule.spec = ScheduleSpec(cron="*/5 * * * *")
        schedule.updated_at = now()
        schedule.successful_runs = 3
        await storage.update_schedule(schedule)
        assert await storage.get_schedule("s1") == schedule
        with pytest.raises(ValueError):
            await storage.update_schedule(make_schedule("missing"))
        await storage.delete_schedule("s1")
        deleted = await storage.get_schedule("s1")
        assert deleted is not None and deleted.status is ScheduleStatus.DELETED
        with pytest.raises(ValueError):
            await storage.delete_schedule("missing")

    async def test_list_schedules(self, storage: StorageBackend) -> None:
        for i in range(10):
            name = "wf_a" if i < 4 else "wf_b"
            status = ScheduleStatus.PAUSED if i == 0 else ScheduleStatus.ACTIVE
            created = T0 + timedelta(minutes=i)
            await storage.create_schedule(
                make_schedule(f"s{i}", workflow_name=name, status=status, created_at=created)
            )
        assert [s.schedule_id for s in await storage.list_schedules(limit=3)] == ["s9", "s8", "s7"]
        assert len(await storage.list_schedules(limit=5)) == 5
        by_name = await storage.list_schedules(workflow_name="wf_a")
        assert [s.schedule_id for s in by_name] == ["s3", "s2", "s1", "s0"]
        paused = await storage.list_schedules(status=ScheduleStatus.PAUSED)
        assert [s.schedule_id for s in paused] == ["s0"]
        page = await storage.list_schedules(workflow_name="wf_b", limit=10, offset=2)
        assert [s.schedule_id for s in page] == ["s7", "s6", "s5", "s4"]

    async def test_list_schedules_offset(self, storage: StorageBackend) -> None:
        for i in range(5):
            await storage.create_schedule(
                make_schedule(f"s{i}", created_at=T0 + timedelta(minutes=i))
            )
        assert len(await storage.list_schedules(limit=10, offset=2)) == 3

    async def test_due_schedules(self, storage: StorageBackend) -> None:
        t = now()
        cases = {
            "due_late": (ScheduleStatus.ACTIVE, t - timedelta(minutes=5)),
            "due_now": (ScheduleStatus.ACTIVE, t),
            "future": (ScheduleStatus.ACTIVE, t + timedelta(minutes=5)),
            "paused": (ScheduleStatus.PAUSED, t - timedelta(minutes=5)),
            "deleted": (ScheduleStatus.DELETED, t - timedelta(minutes=5)),
            "unset": (ScheduleStatus.ACTIVE, None),
        }
        for schedule_id, (status, next_run) in cases.items():
            await storage.create_schedule(
                make_schedule(schedule_id, status=status, next_run_time=next_run)
            )
        due = await storage.get_due_schedules(t)
        assert [s.schedule_id for s in due] == ["due_late", "due_now"]

    async def test_running_runs(self, storage: StorageBackend) -> None:
        await storage.create_schedule(make_schedule("s"))
        await storage.add_running_run("s", "run_1")
        await storage.add_running_run("s", "run_2")
        await storage.add_running_run("s", "run_1")
        stored = await storage.get_schedule("s")
        assert stored is not None and stored.running_run_ids == ["run_1", "run_2"]
        await storage.remove_running_run("s", "run_1")
        await storage.remove_running_run("s", "absent")
        stored = await storage.get_schedule("s")
        assert stored is not None and stored.running_run_ids == ["run_2"]
        with pytest.raises(ValueError):
            await storage.add_running_run("missing", "run_1")
        with pytest.raises(ValueError):
            await storage.remove_running_run("missing", "run_1")

    async def test_patch_schedule(self, storage: StorageBackend) -> None:
        stamp = T0 + timedelta(seconds=1)
        await storage.create_schedule(make_schedule("p", updated_at=stamp))
        changes: dict[str, Any] = {
            "status": ScheduleStatus.PAUSED,
            "running_run_ids": ["run_a"],
            "total_runs": 4,
            "next_run_time": T0 + timedelta(hours=1),
            "updated_at": stamp + timedelta(seconds=1),
        }
        assert await storage.patch_schedule("p", changes, if_updated_at=stamp)
        stored = await storage.get_schedule("p")
        assert stored is not None
        assert (stored.status, stored.running_run_ids, stored.total_runs) == (
            ScheduleStatus.PAUSED,
            ["run_a"],
            4,
        )
        assert stored.next_run_time == T0 + timedelta(hours=1)
        assert stored.workflow_name == "wf" and stored.skipped_runs == 0  # untouched
        # Someone wrote since ``stamp``: the conditional patch changes nothing.
        assert not await storage.patch_schedule("p", {"total_runs": 9}, if_updated_at=stamp)
        assert not await storage.patch_schedule("p", {"total_runs": 9}, if_updated_at=None)
        again = await storage.get_schedule("p")
        assert again is not None and again.total_runs == 4
        assert await storage.patch_schedule("p", {"skipped_runs": 2})
        with pytest.raises(ValueError):
            await storage.patch_schedule("missing", {"total_runs": 1})
