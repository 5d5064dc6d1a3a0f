"""The schedule API: start a workflow on a cron, interval or calendar spec.

A schedule is a row in storage plus one durable timer due at its next slot. The
local runtime's timer service (and on Celery, the Beat tick) claims that timer and
fires the slot per the overlap policy (see :mod:`pyworkflow.scheduler.schedules`).
Every function takes ``storage=``; without it the configured storage is used.

Example:
    >>> import asyncio
    >>> from pyworkflow import ScheduleSpec, workflow
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> @workflow(name="doctest_nightly")
    ... async def nightly() -> str:
    ...     return "done"
    >>> async def main():
    ...     store = InMemoryStorageBackend()
    ...     s = await create_schedule("doctest_nightly", ScheduleSpec(cron="0 2 * * *"),
    ...                               schedule_id="nightly", storage=store)
    ...     return s.schedule_id, s.status.value, s.next_run_time is not None
    >>> asyncio.run(main())
    ('nightly', 'active', True)
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pyworkflow.config import get_config
from pyworkflow.core.registry import get_workflow
from pyworkflow.engine import events as ev
from pyworkflow.engine.storage_choice import ensure_connected
from pyworkflow.scheduler.schedules import arm, next_slot, start_backfill, trigger_now
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import OverlapPolicy, Schedule, ScheduleSpec, ScheduleStatus
from pyworkflow.utils.schedule import (
    calculate_backfill_times,
    validate_spec,
)

__all__ = [
    "backfill_schedule",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
    "trigger_schedule",
    "update_schedule",
]


async def _storage(storage: StorageBackend | None) -> StorageBackend:
    chosen = storage if storage is not None else get_config().storage
    if chosen is None:
        raise ValueError(
            "Storage backend required: pass storage=... or call "
            "pyworkflow.configure(storage=...) first."
        )
    return await ensure_connected(chosen)


async def _existing(store: StorageBackend, schedule_id: str) -> Schedule:
    schedule = await store.get_schedule(schedule_id)
    if schedule is None:
        raise ValueError(f"Schedule '{schedule_id}' not found")
    return schedule


async def create_schedule(
    workflow_name: str,
    spec: ScheduleSpec,
    *args: Any,
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP,
    schedule_id: str | None = None,
    storage: StorageBackend | None = None,
    **kwargs: Any,
) -> Schedule:
    """Create an ACTIVE schedule that starts ``workflow_name(*args, **kwargs)``.

    Raises ``ValueError`` for an unregistered workflow, a spec without cron, interval
    or calendar, an invalid cron expression, duration or time zone; nothing is stored
    then.

    Example:
        >>> import asyncio
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> asyncio.run(create_schedule("nope", ScheduleSpec(interval="5m"),
        ...                             storage=InMemoryStorageBackend()))
        Traceback (most recent call last):
        ...
        ValueError: Workflow 'nope' not found in registry
    """
    store = await _storage(storage)
    if get_workflow(workflow_name) is None:
        raise ValueError(f"Workflow '{workflow_name}' not found in registry")
    validate_spec(spec)
    now = datetime.now(UTC)
    schedule = Schedule(
        schedule_id=schedule_id or f"sched_{uuid.uuid4().hex[:12]}",
        workflow_name=workflow_name,
        spec=spec,
        args=serialize_args(*args),
        kwargs=serialize_kwargs(**kwargs),
        overlap_policy=OverlapPolicy(overlap_policy),
        created_at=now,
        updated_at=now,
    )
    schedule.next_run_time = next_slot(schedule, None, now)
    await store.create_schedule(schedule)
    await arm(store, schedule, now)
    return schedule


async def get_schedule(schedule_id: str, storage: StorageBackend | None = None) -> Schedule | None:
    """The schedule, or None.

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_get")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_get", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_get", storage=store))
        >>> asyncio.run(get_schedule("s_get", storage=store)).spec.cron
        '0 9 * * *'
    """
    return await (await _storage(storage)).get_schedule(schedule_id)


async def list_schedules(
    workflow_name: str | None = None,
    status: ScheduleStatus | None = None,
    limit: int = 100,
    offset: int = 0,
    storage: StorageBackend | None = None,
) -> list[Schedule]:
    """Schedules, newest first, optionally of one workflow or status.

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_list")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_list", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_list", storage=store))
        >>> [x.schedule_id for x in asyncio.run(list_schedules(storage=store))]
        ['s_list']
    """
    store = await _storage(storage)
    return await store.list_schedules(workflow_name, status, limit, offset)


async def update_schedule(
    schedule_id: str,
    spec: ScheduleSpec | None = None,
    overlap_policy: OverlapPolicy | None = None,
    storage: StorageBackend | None = None,
) -> Schedule:
    """Change the spec (next slot recomputed from now) and/or the overlap policy.

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_update")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_update", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_update", storage=store))
        >>> from pyworkflow import OverlapPolicy
        >>> asyncio.run(update_schedule("s_update", overlap_policy=OverlapPolicy.ALLOW_ALL,
        ...                             storage=store)).overlap_policy.value
        'allow_all'
    """
    store = await _storage(storage)
    schedule = await _existing(store, schedule_id)
    now = datetime.now(UTC)
    changes: dict[str, Any] = {"updated_at": now}
    if spec is not None:
        validate_spec(spec)
        changes["spec"] = spec
        changes["next_run_time"] = next_slot(replace(schedule, spec=spec), None, now)
    if overlap_policy is not None:
        changes["overlap_policy"] = OverlapPolicy(overlap_policy)
    return await _patch(store, schedule_id, changes, now)


async def _patch(
    store: StorageBackend, schedule_id: str, changes: dict[str, Any], now: datetime
) -> Schedule:
    """Write only the fields the API owns (atomically), so a scheduler processing the
    schedule at the same moment loses nothing and sees the change on its next pass."""
    await store.patch_schedule(schedule_id, changes)
    schedule = await _existing(store, schedule_id)
    await arm(store, schedule, now, asap=True)
    return schedule


async def pause_schedule(schedule_id: str, storage: StorageBackend | None = None) -> Schedule:
    """Stop firing (runs already going continue).

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_pause")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_pause", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_pause", storage=store))
        >>> asyncio.run(pause_schedule("s_pause", storage=store)).status.value
        'paused'
    """
    return await _set_status(schedule_id, ScheduleStatus.PAUSED, storage)


async def resume_schedule(schedule_id: str, storage: StorageBackend | None = None) -> Schedule:
    """Fire again, from the next slot after now (paused slots are not made up).

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_resume")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_resume", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_resume", storage=store))
        >>> _ = asyncio.run(pause_schedule("s_resume", storage=store))
        >>> asyncio.run(resume_schedule("s_resume", storage=store)).status.value
        'active'
    """
    return await _set_status(schedule_id, ScheduleStatus.ACTIVE, storage)


async def _set_status(
    schedule_id: str, status: ScheduleStatus, storage: StorageBackend | None
) -> Schedule:
    store = await _storage(storage)
    schedule = await _existing(store, schedule_id)
    now = datetime.now(UTC)
    changes: dict[str, Any] = {"status": status, "updated_at": now}
    if status is ScheduleStatus.ACTIVE:
        changes["next_run_time"] = next_slot(schedule, None, now)
    return await _patch(store, schedule_id, changes, now)


async def delete_schedule(schedule_id: str, storage: StorageBackend | None = None) -> None:
    """Soft delete: status DELETED, never fires again.

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_delete")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_delete", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_delete", storage=store))
        >>> asyncio.run(delete_schedule("s_delete", storage=store))
        >>> asyncio.run(get_schedule("s_delete", storage=store)).status.value
        'deleted'
    """
    store = await _storage(storage)
    await store.delete_schedule(schedule_id)
    deleted = await store.get_schedule(schedule_id)
    if deleted is not None:
        await arm(store, deleted)


async def trigger_schedule(schedule_id: str, storage: StorageBackend | None = None) -> str:
    """Start a run of the schedule now, outside its slots; returns its run id.

    The run counts like any other (``total_runs``, ``running_run_ids``, its outcome in
    the counters); the overlap policy does not apply and the next slot is unchanged.
    On the local runtime the run goes on in the background of this process.

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_tr")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_tr", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_tr", storage=store))
        >>> asyncio.run(trigger_schedule("s_tr", storage=store)).startswith("sched_s_tr")
        True
    """
    store = await _storage(storage)
    return await trigger_now(store, schedule_id, _launcher(store))


async def backfill_schedule(
    schedule_id: str,
    start_time: datetime,
    end_time: datetime,
    storage: StorageBackend | None = None,
) -> list[str]:
    """Start one run per slot of the schedule in ``[start_time, end_time)``; returns
    their run ids. Backfilled runs are independent of the schedule's counters and
    overlap policy; backfilling the same slots again starts nothing new (the same run
    ids are returned).

    Example:
        >>> import asyncio
        >>> from pyworkflow import ScheduleSpec, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_sched_bf")
        ... async def job() -> None: ...
        >>> store = InMemoryStorageBackend()
        >>> s = asyncio.run(create_schedule("doctest_sched_bf", ScheduleSpec(cron="0 9 * * *"),
        ...                                 schedule_id="s_bf", storage=store))
        >>> from datetime import datetime, UTC
        >>> ids = asyncio.run(backfill_schedule("s_bf", datetime(2026, 1, 1, tzinfo=UTC),
        ...                                     datetime(2026, 1, 4, tzinfo=UTC), storage=store))
        >>> len(ids)
        3
    """
    store = await _storage(storage)
    schedule = await _existing(store, schedule_id)
    times = calculate_backfill_times(schedule.spec, start_time, end_time)
    if not times:
        return []
    await store.record_event(
        ev.create_schedule_backfill_started_event(
            schedule_id, schedule_id, start_time, end_time, len(times)
        )
    )
    run_ids = await start_backfill(store, schedule, times, _launcher(store))
    await store.record_event(
        ev.create_schedule_backfill_completed_event(schedule_id, schedule_id, len(run_ids), run_ids)
    )
    return run_ids


def _launcher(store: StorageBackend) -> Any:
    """How this process starts a schedule's run: the configured runtime."""
    from pyworkflow.runtime.factory import get_runtime  # runtimes sit above primitives

    runtime = get_runtime(get_config().default_runtime)

    async def launch(run_id: str) -> None:
        if runtime.name == "local":
            from pyworkflow.runtime.local import links_for

            await links_for(store).launch(run_id, False)
        else:
            await runtime.schedule_resume(run_id, store)

    return launch
