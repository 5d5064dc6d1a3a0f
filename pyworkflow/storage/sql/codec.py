"""Row <-> record converters shared by every SQL dialect.

Rows are positional, in the column order of :mod:`pyworkflow.storage.sql.schema`;
value encodings (timestamps, JSON, booleans) come from the dialect.

Example:
    >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
    >>> d = Dialect()
    >>> run = WorkflowRun(run_id="r1", workflow_name="w", status=RunStatus.PENDING)
    >>> row_to_run(d, run_to_row(d, run)) == run
    True
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyworkflow.engine.events import Event, EventType, dedup_key
from pyworkflow.storage.base import CorruptStorageError
from pyworkflow.storage.schemas import (
    Hook,
    HookStatus,
    OverlapPolicy,
    RunStatus,
    Schedule,
    ScheduleSpec,
    ScheduleStatus,
    StepExecution,
    StepStatus,
    Timer,
    WorkflowRun,
)
from pyworkflow.storage.sql.dialect import Dialect
from pyworkflow.storage.sql.driver import Row


def _required_dt(d: Dialect, value: Any) -> datetime:
    result = d.decode_dt(value)
    return result if result is not None else datetime.now(UTC)


def run_to_row(d: Dialect, r: WorkflowRun) -> list[Any]:
    """Values for :data:`RUN_COLUMNS`."""
    return [
        r.run_id,
        r.workflow_name,
        r.status.value,
        d.encode_dt(r.created_at),
        d.encode_dt(r.updated_at),
        d.encode_dt(r.started_at),
        d.encode_dt(r.completed_at),
        r.input_args,
        r.input_kwargs,
        r.result,
        r.error,
        r.idempotency_key,
        r.max_duration,
        d.encode_json(r.context),
        r.recovery_attempts,
        r.max_recovery_attempts,
        d.encode_bool(r.recover_on_worker_loss),
        r.parent_run_id,
        r.nesting_depth,
        r.continued_from_run_id,
        r.continued_to_run_id,
    ]


def row_to_run(d: Dialect, row: Row) -> WorkflowRun:
    """The inverse of :func:`run_to_row`."""
    return WorkflowRun(
        run_id=row[0],
        workflow_name=row[1],
        status=RunStatus(row[2]),
        created_at=_required_dt(d, row[3]),
        updated_at=_required_dt(d, row[4]),
        started_at=d.decode_dt(row[5]),
        completed_at=d.decode_dt(row[6]),
        input_args=row[7],
        input_kwargs=row[8],
        result=row[9],
        error=row[10],
        idempotency_key=row[11],
        max_duration=row[12],
        context=dict(d.decode_json(row[13]) or {}),
        recovery_attempts=int(row[14]),
        max_recovery_attempts=int(row[15]),
        recover_on_worker_loss=d.decode_bool(row[16]),
        parent_run_id=row[17],
        nesting_depth=int(row[18]),
        continued_from_run_id=row[19],
        continued_to_run_id=row[20],
    )


def event_to_row(d: Dialect, e: Event, sequence: int) -> list[Any]:
    """Values for :data:`EVENT_COLUMNS`, with the event's de-duplication key."""
    return [
        e.run_id,
        sequence,
        e.event_id,
        e.type.value,
        d.encode_dt(e.timestamp),
        d.encode_json(e.data),
        dedup_key(e),
    ]


def row_to_event(d: Dialect, row: Row) -> Event:
    """An event from ``run_id, sequence, event_id, type, timestamp, data``."""
    try:
        etype = EventType(row[3])
    except ValueError as exc:
        raise CorruptStorageError(
            f"Run {row[0]}: event {row[1]} has unknown type {row[3]!r}; the database was "
            "written by another program or version. Remove or fix that row."
        ) from exc
    return Event(
        run_id=row[0],
        sequence=int(row[1]),
        event_id=row[2],
        type=etype,
        timestamp=_required_dt(d, row[4]),
        data=dict(d.decode_json(row[5]) or {}),
    )


def step_to_row(d: Dialect, s: StepExecution) -> list[Any]:
    """Values for :data:`STEP_COLUMNS`."""
    return [
        s.step_id,
        s.run_id,
        s.step_name,
        s.status.value,
        s.attempt,
        s.max_retries,
        d.encode_dt(s.created_at),
        d.encode_dt(s.updated_at),
        d.encode_dt(s.started_at),
        d.encode_dt(s.completed_at),
        s.input_args,
        s.input_kwargs,
        s.result,
        s.error,
        d.encode_dt(s.retry_after),
        s.retry_delay,
    ]


def row_to_step(d: Dialect, row: Row) -> StepExecution:
    """The inverse of :func:`step_to_row`."""
    return StepExecution(
        step_id=row[0],
        run_id=row[1],
        step_name=row[2],
        status=StepStatus(row[3]),
        attempt=int(row[4]),
        max_retries=int(row[5]),
        created_at=_required_dt(d, row[6]),
        updated_at=_required_dt(d, row[7]),
        started_at=d.decode_dt(row[8]),
        completed_at=d.decode_dt(row[9]),
        input_args=row[10],
        input_kwargs=row[11],
        result=row[12],
        error=row[13],
        retry_after=d.decode_dt(row[14]),
        retry_delay=row[15],
    )


def hook_to_row(d: Dialect, h: Hook) -> list[Any]:
    """Values for :data:`HOOK_COLUMNS`."""
    return [
        h.hook_id,
        h.run_id,
        h.token,
        h.url,
        h.status.value,
        d.encode_dt(h.created_at),
        d.encode_dt(h.received_at),
        d.encode_dt(h.expires_at),
        h.payload,
        h.name,
        h.payload_schema,
        d.encode_json(h.metadata),
    ]


def row_to_hook(d: Dialect, row: Row) -> Hook:
    """The inverse of :func:`hook_to_row`."""
    return Hook(
        hook_id=row[0],
        run_id=row[1],
        token=row[2],
        url=row[3],
        status=HookStatus(row[4]),
        created_at=_required_dt(d, row[5]),
        received_at=d.decode_dt(row[6]),
        expires_at=d.decode_dt(row[7]),
        payload=row[8],
        name=row[9],
        payload_schema=row[10],
        metadata=dict(d.decode_json(row[11]) or {}),
    )


def timer_to_row(d: Dialect, t: Timer) -> list[Any]:
    """Values for :data:`TIMER_COLUMNS`."""
    return [
        t.timer_id,
        t.run_id,
        t.kind,
        t.key,
        d.encode_dt(t.fire_at),
        t.claimed_by,
        d.encode_dt(t.claimed_until),
    ]


def row_to_timer(d: Dialect, row: Row) -> Timer:
    """The inverse of :func:`timer_to_row` (the id is derived, so it is skipped)."""
    return Timer(
        run_id=row[1],
        kind=row[2],
        key=row[3],
        fire_at=_required_dt(d, row[4]),
        claimed_by=row[5],
        claimed_until=d.decode_dt(row[6]),
    )


def schedule_to_row(d: Dialect, s: Schedule) -> list[Any]:
    """Values for :data:`SCHEDULE_COLUMNS`; the whole spec is kept as JSON."""
    return [
        s.schedule_id,
        s.workflow_name,
        d.encode_json(s.spec.to_dict()),
        s.status.value,
        s.args,
        s.kwargs,
        s.overlap_policy.value,
        d.encode_dt(s.created_at),
        d.encode_dt(s.updated_at),
        d.encode_dt(s.last_run_at),
        d.encode_dt(s.next_run_time),
        s.last_run_id,
        d.encode_json(list(s.running_run_ids)),
        s.buffered_count,
        s.total_runs,
        s.successful_runs,
        s.failed_runs,
        s.skipped_runs,
    ]


def row_to_schedule(d: Dialect, row: Row) -> Schedule:
    """The inverse of :func:`schedule_to_row`."""
    return Schedule(
        schedule_id=row[0],
        workflow_name=row[1],
        spec=ScheduleSpec.from_dict(d.decode_json(row[2]) or {}),
        status=ScheduleStatus(row[3]),
        args=row[4],
        kwargs=row[5],
        overlap_policy=OverlapPolicy(row[6]),
        created_at=_required_dt(d, row[7]),
        updated_at=d.decode_dt(row[8]),
        last_run_at=d.decode_dt(row[9]),
        next_run_time=d.decode_dt(row[10]),
        last_run_id=row[11],
        running_run_ids=list(d.decode_json(row[12]) or []),
        buffered_count=int(row[13]),
        total_runs=int(row[14]),
        successful_runs=int(row[15]),
        failed_runs=int(row[16]),
        skipped_runs=int(row[17]),
    )
