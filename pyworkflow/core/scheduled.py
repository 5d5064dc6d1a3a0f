"""``@scheduled_workflow``: a workflow that carries its own schedule.

The decorator registers the workflow and remembers its spec; nothing fires until
:func:`activate_scheduled_workflows` creates the schedules in a storage (once per
workflow: an existing ``auto_<name>`` schedule is left as it is).

Example:
    >>> @scheduled_workflow(cron="0 9 * * 1-5", timezone="Europe/Berlin",
    ...                     name="doctest_weekday_report")
    ... async def weekday_report() -> str:
    ...     return "sent"
    >>> get_scheduled_workflow("doctest_weekday_report").spec.cron
    '0 9 * * 1-5'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pyworkflow.core.workflow import workflow
from pyworkflow.storage.schemas import CalendarSpec, OverlapPolicy, ScheduleSpec
from pyworkflow.utils.schedule import validate_spec

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "ScheduledWorkflowMetadata",
    "activate_scheduled_workflows",
    "clear_scheduled_workflows",
    "get_scheduled_workflow",
    "list_scheduled_workflows",
    "register_scheduled_workflow",
    "scheduled_workflow",
    "unregister_scheduled_workflow",
]


@dataclass
class ScheduledWorkflowMetadata:
    """A workflow's own schedule, as declared by ``@scheduled_workflow``.

    Example:
        >>> ScheduledWorkflowMetadata("w", ScheduleSpec(interval="5m"), OverlapPolicy.SKIP,
        ...                           print).spec.interval
        '5m'
    """

    workflow_name: str
    spec: ScheduleSpec
    overlap_policy: OverlapPolicy
    func: Callable[..., Any]


_scheduled: dict[str, ScheduledWorkflowMetadata] = {}


def register_scheduled_workflow(
    workflow_name: str, spec: ScheduleSpec, overlap_policy: OverlapPolicy, func: Callable[..., Any]
) -> None:
    """Remember ``workflow_name``'s schedule (what the decorator does)."""
    _scheduled[workflow_name] = ScheduledWorkflowMetadata(workflow_name, spec, overlap_policy, func)


def get_scheduled_workflow(name: str) -> ScheduledWorkflowMetadata | None:
    """The declared schedule of a workflow, or None.

    Example:
        >>> get_scheduled_workflow("no_such_workflow") is None
        True
    """
    return _scheduled.get(name)


def list_scheduled_workflows() -> dict[str, ScheduledWorkflowMetadata]:
    """Every declared schedule, by workflow name (a copy).

    Example:
        >>> isinstance(list_scheduled_workflows(), dict)
        True
    """
    return dict(_scheduled)


def unregister_scheduled_workflow(name: str) -> bool:
    """Forget a declared schedule; whether there was one."""
    return _scheduled.pop(name, None) is not None


def clear_scheduled_workflows() -> None:
    """Forget every declared schedule."""
    _scheduled.clear()


def scheduled_workflow(
    cron: str | None = None,
    interval: str | int | None = None,
    calendar: list[CalendarSpec] | None = None,
    timezone: str = "UTC",
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    jitter: str | None = None,
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP,
    name: str | None = None,
    durable: bool | None = None,
    max_duration: str | int | None = None,
    recover_on_worker_loss: bool | None = None,
    max_recovery_attempts: int | None = None,
) -> Callable[[F], F]:
    """Register a workflow together with the schedule it should run on.

    Example:
        >>> @scheduled_workflow(interval="15m", name="doctest_every_15m")
        ... async def sync_inventory() -> None: ...
        >>> sync_inventory.__schedule_spec__.interval, sync_inventory.__scheduled__
        ('15m', True)
    """
    if cron is None and interval is None and not calendar:
        raise ValueError("scheduled_workflow requires at least one of: cron, interval, or calendar")
    spec = ScheduleSpec(
        cron=cron,
        interval=f"{interval}s" if isinstance(interval, int) else interval,
        calendar=calendar,
        timezone=timezone,
        start_at=start_at,
        end_at=end_at,
        jitter=jitter,
    )
    # A spec that can never fire fails at import, not at activation.
    validate_spec(spec)
    policy = OverlapPolicy(overlap_policy)

    def decorator(func: F) -> F:
        wrapped = workflow(
            name=name,
            durable=durable,
            max_duration=max_duration,
            recover_on_worker_loss=recover_on_worker_loss,
            max_recovery_attempts=max_recovery_attempts,
        )(func)
        workflow_name = name or func.__name__
        attrs = wrapped.__dict__
        attrs["__scheduled__"] = True
        attrs["__schedule_spec__"] = spec
        attrs["__overlap_policy__"] = policy
        register_scheduled_workflow(workflow_name, spec, policy, wrapped)
        return wrapped

    return decorator


async def activate_scheduled_workflows(
    storage: Any = None, schedule_id_prefix: str = "auto_"
) -> list[str]:
    """Create ``<prefix><workflow name>`` schedules for every declared schedule that
    has none yet in ``storage``; returns the ids created now.

    Example:
        >>> import asyncio
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @scheduled_workflow(cron="0 3 * * *", name="doctest_nightly_cleanup")
        ... async def cleanup() -> None: ...
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     first = await activate_scheduled_workflows(storage=store)
        ...     again = await activate_scheduled_workflows(storage=store)
        ...     return "auto_doctest_nightly_cleanup" in first, again
        >>> asyncio.run(main())
        (True, [])
    """
    # The schedule API sits above the core definitions.
    from pyworkflow.config import get_config
    from pyworkflow.engine.storage_choice import ensure_connected
    from pyworkflow.primitives.schedule import create_schedule

    store = storage if storage is not None else get_config().storage
    if store is None:
        raise ValueError(
            "activate_scheduled_workflows needs a storage: pass storage=... or configure one"
        )
    await ensure_connected(store)
    created: list[str] = []
    for meta in list_scheduled_workflows().values():
        schedule_id = f"{schedule_id_prefix}{meta.workflow_name}"
        if await store.get_schedule(schedule_id) is not None:
            continue
        await create_schedule(
            meta.workflow_name,
            meta.spec,
            overlap_policy=meta.overlap_policy,
            schedule_id=schedule_id,
            storage=store,
        )
        created.append(schedule_id)
    return created
