"""Timer tasks: the Beat tick, and the processing of schedules it hands out.

``pyworkflow.tick`` (sent by Beat every ``PYWORKFLOW_TICK_INTERVAL`` seconds) claims
the durable timers due before the next tick: a run's timer becomes a resume timed
for its moment, a schedule's timer a ``pyworkflow.execute_scheduled_workflow`` task
timed for its slot, which fires the slot per the schedule's overlap policy.

Example:
    >>> execute_scheduled_workflow_task.name
    'pyworkflow.execute_scheduled_workflow'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.celery import loop
from pyworkflow.celery.app import tick_interval
from pyworkflow.celery.queues import EXECUTE_SCHEDULED, TICK
from pyworkflow.celery.tasks import StorageConfig, _Outbox, _send_resume, _task
from pyworkflow.core.scheduled import activate_scheduled_workflows
from pyworkflow.runtime.lease import new_owner
from pyworkflow.scheduler.schedules import process_schedule
from pyworkflow.scheduler.tick import claim_wakeups
from pyworkflow.storage.base import StorageBackend

__all__ = ["execute_scheduled_workflow_task", "tick_task"]


@_task(TICK, ignore_result=True)
def tick_task(storage_config: StorageConfig = None) -> int:
    """Claim the timers due before the next tick and send one resume per run, each to
    arrive when its timer is due. Returns how many runs it woke.

    Claims are atomic, so any number of Beat processes may send ticks: each timer is
    returned to one of them.

    Example (not run: needs storage)::

        tick_task()   # what Beat sends every PYWORKFLOW_TICK_INTERVAL seconds
    """
    # Look a little past the next tick, so a timer due just after it is not late.
    lookahead = tick_interval() * 1.5

    async def body() -> list[Any]:
        storage = await loop.storage_for(storage_config)
        await _activate_once(storage)
        return await claim_wakeups(storage, f"tick:{new_owner()}", lookahead=lookahead)

    wakeups = loop.run(body())
    for wake in wakeups:
        if wake.is_schedule:
            _send_schedule(wake.run_id, storage_config, wake.at)
        else:
            _send_resume(wake.run_id, storage_config, at=wake.at)
    return len(wakeups)


_activated: set[str] = set()


async def _activate_once(storage: StorageBackend) -> None:
    """Create the schedules declared with ``@scheduled_workflow`` (once per process and
    storage; existing ones are left alone), as upstream's Beat scheduler did."""
    key = loop.config_key(None) + ":" + str(id(storage))
    if key in _activated:
        return
    _activated.add(key)
    try:
        created = await activate_scheduled_workflows(storage=storage)
    except Exception as error:
        logger.warning("Activating @scheduled_workflow schedules failed: {}", error)
        return
    if created:
        logger.info("Activated schedules: {}", ", ".join(created))


def _send_schedule(schedule_id: str, storage_config: StorageConfig, at: datetime) -> None:
    """Have the schedule processed when its timer is due (its claim stays ours until
    then; if the message is lost the claim expires and a later tick sends it again)."""
    delay = (at - datetime.now(UTC)).total_seconds()
    try:
        execute_scheduled_workflow_task.apply_async(
            args=[schedule_id, at.isoformat()],
            kwargs={"storage_config": storage_config},
            countdown=delay if delay > 0 else None,
        )
    except Exception as error:
        logger.warning("Could not send schedule {} ({}); a later tick will", schedule_id, error)


@_task(EXECUTE_SCHEDULED, ignore_result=True)
def execute_scheduled_workflow_task(
    schedule_id: str, scheduled_time: str | None = None, storage_config: StorageConfig = None
) -> list[str]:
    """Process schedule ``schedule_id`` now: count its ended runs, fire its due slot
    per its overlap policy, re-arm its timer. Returns the run ids started (each is
    then started by a resume sent to the workflow workers).

    Example (not run: needs a worker)::

        execute_scheduled_workflow_task.delay("sched_abc123", "2026-01-01T09:00:00+00:00")
    """
    outbox = _Outbox()

    async def body() -> list[str]:
        storage = await loop.storage_for(storage_config)
        return await process_schedule(storage, schedule_id, outbox.wake)

    try:
        return loop.run(body())
    finally:
        outbox.flush(storage_config)
