"""``@scheduled_workflow`` and its registry helpers (API.md §1.2, §8.11)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import pyworkflow
from pyworkflow import CalendarSpec, OverlapPolicy, ScheduleSpec, configure
from pyworkflow.core.registry import get_workflow
from pyworkflow.core.scheduled import (
    ScheduledWorkflowMetadata,
    activate_scheduled_workflows,
    clear_scheduled_workflows,
    get_scheduled_workflow,
    list_scheduled_workflows,
    register_scheduled_workflow,
    scheduled_workflow,
    unregister_scheduled_workflow,
)
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.utils.duration import parse_duration_seconds
from pyworkflow.utils.schedule import calculate_next_run_time

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_declared_schedules() -> Iterator[None]:
    clear_scheduled_workflows()
    yield
    clear_scheduled_workflows()


def test_attributes_and_both_registries() -> None:
    @scheduled_workflow(
        cron="0 9 * * 1-5",
        timezone="Europe/Berlin",
        overlap_policy=OverlapPolicy.BUFFER_ONE,
        name="sd_report",
        durable=True,
        max_duration="1h",
        recover_on_worker_loss=True,
        max_recovery_attempts=5,
    )
    async def report(day: str) -> str:
        return f"report {day}"

    assert report.__workflow__ is True and report.__scheduled__ is True
    assert report.__workflow_name__ == "sd_report"
    assert report.__workflow_durable__ is True
    assert report.__workflow_max_duration__ == "1h"
    assert report.__workflow_recover_on_worker_loss__ is True
    assert report.__workflow_max_recovery_attempts__ == 5
    assert report.__overlap_policy__ is OverlapPolicy.BUFFER_ONE
    spec = report.__schedule_spec__
    assert isinstance(spec, ScheduleSpec)
    assert (spec.cron, spec.timezone, spec.interval) == ("0 9 * * 1-5", "Europe/Berlin", None)
    meta = get_workflow("sd_report")
    assert meta is not None and meta.max_duration == "1h"
    declared = get_scheduled_workflow("sd_report")
    assert isinstance(declared, ScheduledWorkflowMetadata)
    assert declared.workflow_name == "sd_report" and declared.spec == spec
    assert declared.overlap_policy is OverlapPolicy.BUFFER_ONE and declared.func is report


async def test_calling_it_directly_runs_the_function() -> None:
    @scheduled_workflow(interval="5m")
    async def sd_direct(x: int) -> int:
        return x * 2

    assert sd_direct.__workflow_name__ == "sd_direct"
    assert await sd_direct(21) == 42


def test_int_interval_is_seconds() -> None:
    """The signature takes ``interval: str | int``; an int is a number of seconds."""

    @scheduled_workflow(interval=300, name="sd_int")
    async def every() -> None: ...

    spec = every.__schedule_spec__
    assert parse_duration_seconds(spec.interval) == 300
    assert calculate_next_run_time(spec, last_run=T0, now=T0) == T0 + timedelta(minutes=5)


def test_calendar_and_bounds() -> None:
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)

    @scheduled_workflow(interval="5m", name="sd_bounds", start_at=start, end_at=end, jitter="30s")
    async def every() -> None: ...

    spec = every.__schedule_spec__
    assert (spec.interval, spec.start_at, spec.end_at, spec.jitter) == ("5m", start, end, "30s")
    assert every.__overlap_policy__ is OverlapPolicy.SKIP

    @scheduled_workflow(calendar=[CalendarSpec(hour=6, day_of_week=0)], name="sd_cal")
    async def mondays() -> None: ...

    assert mondays.__schedule_spec__.calendar == [CalendarSpec(hour=6, day_of_week=0)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "requires at least one of: cron, interval, or calendar"),
        ({"calendar": []}, "requires at least one of"),
        ({"cron": "0 25 * * *"}, "Invalid cron expression"),
        ({"interval": "often"}, "interval"),
    ],
)
def test_bad_specs_fail_at_decoration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scheduled_workflow(**kwargs)  # type: ignore[arg-type]
    assert list_scheduled_workflows() == {}


def test_helpers_get_list_register_unregister_clear() -> None:
    async def fn() -> None: ...

    spec = ScheduleSpec(interval="1h")
    register_scheduled_workflow("sd_a", spec, OverlapPolicy.ALLOW_ALL, fn)
    register_scheduled_workflow("sd_b", spec, OverlapPolicy.SKIP, fn)
    listed = list_scheduled_workflows()
    assert sorted(listed) == ["sd_a", "sd_b"]
    listed.pop("sd_a")  # a copy
    assert get_scheduled_workflow("sd_a") is not None
    assert get_scheduled_workflow("nope") is None
    assert unregister_scheduled_workflow("sd_a") is True
    assert unregister_scheduled_workflow("sd_a") is False
    clear_scheduled_workflows()
    assert list_scheduled_workflows() == {}


async def test_activate_creates_each_schedule_once() -> None:
    @scheduled_workflow(cron="0 3 * * *", overlap_policy=OverlapPolicy.ALLOW_ALL, name="sd_one")
    async def one() -> None: ...

    @scheduled_workflow(interval="10m", name="sd_two")
    async def two() -> None: ...

    store = InMemoryStorageBackend()
    created = await activate_scheduled_workflows(storage=store)
    assert sorted(created) == ["auto_sd_one", "auto_sd_two"]
    assert await activate_scheduled_workflows(storage=store) == []
    first = await store.get_schedule("auto_sd_one")
    assert first is not None and first.workflow_name == "sd_one"
    assert first.overlap_policy is OverlapPolicy.ALLOW_ALL and first.spec.cron == "0 3 * * *"
    assert first.next_run_time is not None
    timers = [t for t in await store.list_timers("auto_sd_one") if t.kind == "schedule"]
    assert len(timers) == 1
    # A prefix of one's own; an existing schedule is left as it is.
    await store.delete_schedule("auto_sd_two")
    assert await activate_scheduled_workflows(storage=store) == []
    again = await activate_scheduled_workflows(store, schedule_id_prefix="p_")
    assert sorted(again) == ["p_sd_one", "p_sd_two"]


async def test_activate_uses_the_configured_storage_or_raises() -> None:
    @scheduled_workflow(interval="1h", name="sd_cfg")
    async def cfg() -> None: ...

    with pytest.raises(ValueError, match="storage"):
        await activate_scheduled_workflows()
    store = InMemoryStorageBackend()
    configure(storage=store)
    assert await activate_scheduled_workflows() == ["auto_sd_cfg"]
    assert await store.get_schedule("auto_sd_cfg") is not None


def test_exported_from_the_package() -> None:
    assert pyworkflow.scheduled_workflow is scheduled_workflow
    assert pyworkflow.activate_scheduled_workflows is activate_scheduled_workflows
    assert pyworkflow.get_scheduled_workflow is get_scheduled_workflow
    assert pyworkflow.list_scheduled_workflows is list_scheduled_workflows
