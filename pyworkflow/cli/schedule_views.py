"""How ``pyworkflow schedules`` shows a schedule: JSON-ready dicts, tables, one-line notes.

:func:`_summary` is one ``schedules list`` item, :func:`_details` what ``show``,
``create`` and ``update`` print as JSON (the full spec and the run tracking fields too);
the rest renders the same data as tables for the terminal.

Example:
    >>> from pyworkflow.storage.schemas import Schedule, ScheduleSpec
    >>> s = Schedule("sched_1", "report", ScheduleSpec(cron="0 9 * * *"))
    >>> _summary(s)["status"], _details(s)["spec"]["cron"]
    ('active', '0 9 * * *')
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pyworkflow.cli.output import emit, fields_table, iso, status_text
from pyworkflow.cli.state import CLIState
from pyworkflow.storage.schemas import Schedule, ScheduleStatus
from pyworkflow.utils.schedule import describe_schedule


def _summary(s: Schedule) -> dict[str, Any]:
    return {
        "schedule_id": s.schedule_id,
        "workflow_name": s.workflow_name,
        "status": s.status.value,
        "spec": describe_schedule(s.spec),
        "overlap_policy": s.overlap_policy.value,
        "next_run_time": iso(s.next_run_time),
        "total_runs": s.total_runs,
        "successful_runs": s.successful_runs,
        "failed_runs": s.failed_runs,
        "created_at": iso(s.created_at),
    }


def _details(s: Schedule) -> dict[str, Any]:
    spec = s.spec.to_dict()
    spec["description"] = describe_schedule(s.spec)
    return _summary(s) | {
        "spec": spec,
        "skipped_runs": s.skipped_runs,
        "buffered_count": s.buffered_count,
        "last_run_at": iso(s.last_run_at),
        "last_run_id": s.last_run_id,
        "running_run_ids": list(s.running_run_ids),
        "updated_at": iso(s.updated_at),
        "paused_at": iso(s.updated_at) if s.status is ScheduleStatus.PAUSED else None,
        "args": s.args,
        "kwargs": s.kwargs,
    }


def _when(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else None


def _show_details(out: Console, s: Schedule, headline: str | None = None) -> None:
    if headline:
        out.print(headline)
    fields_table(
        out,
        {
            "schedule_id": s.schedule_id,
            "workflow": s.workflow_name,
            "status": s.status.value,
            "schedule": describe_schedule(s.spec),
            "overlap_policy": s.overlap_policy.value,
            "next_run_time": _when(s.next_run_time),
            "last_run_at": _when(s.last_run_at),
            "last_run_id": s.last_run_id,
            "running": ", ".join(s.running_run_ids) or None,
            "runs": f"{s.total_runs} total, {s.successful_runs} ok, {s.failed_runs} failed, "
            f"{s.skipped_runs} skipped",
            "created_at": _when(s.created_at),
            "updated_at": _when(s.updated_at),
        },
    )


def _emit_schedule(state: CLIState, s: Schedule, headline: str | None = None) -> None:
    emit(
        state,
        _details(s),
        table=lambda out: _show_details(out, s, headline),
        plain=[s.schedule_id],
    )


def _list_table(out: Console, found: list[Schedule]) -> None:
    if not found:
        out.print("No schedules.")
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("SCHEDULE ID", no_wrap=True)
    table.add_column("WORKFLOW", no_wrap=True)
    for heading in ("STATUS", "NEXT RUN (UTC)", "RUNS"):
        table.add_column(heading, no_wrap=True)
    table.add_column("SCHEDULE, OVERLAP", overflow="fold", ratio=1)
    for s in found:
        nxt = s.next_run_time
        runs = Text(f"{s.successful_runs}/{s.total_runs} ok")
        if s.failed_runs:
            runs.append(f" {s.failed_runs} failed", style="red")
        table.add_row(
            s.schedule_id,
            s.workflow_name,
            status_text(s.status.value),
            nxt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if nxt else "-",
            runs,
            f"{describe_schedule(s.spec)}, {s.overlap_policy.value}",
        )
    out.print(table)


def _status_change(state: CLIState, schedule: Schedule, verb: str) -> None:
    data = {
        "schedule_id": schedule.schedule_id,
        "status": schedule.status.value,
        "next_run_time": iso(schedule.next_run_time),
    }
    nxt = _when(schedule.next_run_time) or "-"
    emit(
        state,
        data,
        table=lambda out: out.print(
            f"{verb} schedule [bold]{schedule.schedule_id}[/] (next run: {nxt})"
        ),
        plain=[schedule.schedule_id],
    )
