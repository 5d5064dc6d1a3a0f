"""``pyworkflow schedules``: create, inspect and steer schedules (``scheduler run`` fires them).

JSON keys follow upstream: ``schedules list`` items ``{schedule_id, workflow_name,
status, spec (its one-line description), overlap_policy, next_run_time, total_runs,
successful_runs, failed_runs, created_at}``; ``show``, ``create`` and ``update`` add
the full spec ``{cron, interval, timezone, ...}`` and the run tracking fields.

Example (shell)::

    pyworkflow --module myapp.workflows schedules create nightly_report --cron "0 2 * * *"
    pyworkflow schedules list --status active
    pyworkflow --output json schedules show sched_1a2b3c4d5e6f
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime

import click
from rich.console import Console

from pyworkflow.cli.output import emit
from pyworkflow.cli.schedule_views import _emit_schedule, _list_table, _status_change, _summary
from pyworkflow.cli.scheduler_run import background_runs, scheduler
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.core.registry import get_workflow, list_workflows
from pyworkflow.primitives.schedule import (
    backfill_schedule,
    create_schedule,
    delete_schedule,
    pause_schedule,
    resume_schedule,
    trigger_schedule,
    update_schedule,
)
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import OverlapPolicy, Schedule, ScheduleSpec, ScheduleStatus
from pyworkflow.utils.schedule import calculate_backfill_times, validate_spec

__all__ = ["scheduler", "schedules"]

_OVERLAP = [p.value for p in OverlapPolicy]
_WAIT = click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Local runtime: wait until the run(s) finish or suspend. With --no-wait a running "
    "`pyworkflow scheduler run` starts them (within about 30 s).",
)


def _fetch(state: CLIState, schedule_id: str, *, alive: bool = False) -> Schedule:
    """The schedule, or exit 1; ``alive``: a deleted one is refused too."""
    found = state.run(lambda storage: storage.get_schedule(schedule_id))
    if found is None:
        raise fail(f"Schedule not found: {schedule_id}")
    if alive and found.status is ScheduleStatus.DELETED:
        raise fail(f"Schedule {schedule_id} is deleted; create a new one instead.")
    return found


def _rule(cron: str | None, interval: str | None, *, required: bool) -> None:
    if cron and interval:
        raise fail("Give either --cron or --interval, not both.")
    if required and not (cron or interval):
        raise fail(
            "Give --cron '<expression>' (e.g. '0 9 * * *') or --interval <duration> (e.g. 15m)."
        )


def _checked(spec: ScheduleSpec) -> ScheduleSpec:
    try:
        validate_spec(spec)
    except ValueError as error:
        raise fail(str(error)) from None
    return spec


def _require_workflow(name: str) -> None:
    if get_workflow(name) is not None:
        return
    known = sorted(list_workflows())
    hint = "import yours with --module (or PYWORKFLOW_MODULE)"
    if known:
        raise fail(f"Workflow '{name}' is not registered (registered: {', '.join(known)}); {hint}.")
    raise fail(f"Workflow '{name}' is not registered and no workflows are; {hint}.")


def _parse_time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            f"{option}: not an ISO 8601 time: {text!r} (e.g. 2026-01-31T09:00:00Z)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@click.group()
def schedules() -> None:
    """Create, inspect, pause, trigger and backfill schedules."""


@schedules.command("list")
@click.option("--workflow", help="Only schedules of this workflow.")
@click.option("--status", type=click.Choice([s.value for s in ScheduleStatus]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_obj
def list_cmd(state: CLIState, workflow: str | None, status: str | None, limit: int) -> None:
    """List schedules, newest first."""
    wanted = ScheduleStatus(status) if status else None
    found: list[Schedule] = state.run(
        lambda storage: storage.list_schedules(workflow, wanted, limit, 0)
    )
    rows = [_summary(s) for s in found]
    emit(
        state,
        rows,
        table=lambda out: _list_table(out, found),
        plain=[r["schedule_id"] for r in rows],
    )


@schedules.command("create")
@click.argument("workflow_name")
@click.option("--cron", help="Cron expression, e.g. '0 9 * * MON-FRI'.")
@click.option("--interval", help="Interval, e.g. 30s, 15m, 1h30m.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone name.")
@click.option(
    "--overlap",
    type=click.Choice(_OVERLAP),
    default="skip",
    show_default=True,
    help="What to do when the previous run is still going.",
)
@click.option("--schedule-id", help="Your own id (default: sched_<12 hex>).")
@click.pass_obj
def create(
    state: CLIState,
    workflow_name: str,
    cron: str | None,
    interval: str | None,
    timezone: str,
    overlap: str,
    schedule_id: str | None,
) -> None:
    """Create a schedule that starts WORKFLOW_NAME on a cron expression or an interval.

    \b
    Examples:
      pyworkflow --module myapp.workflows schedules create report --cron "0 9 * * *"
      pyworkflow --module myapp.workflows schedules create sync --interval 15m \\
          --overlap buffer_one --schedule-id sync_every_15m
    """
    _rule(cron, interval, required=True)
    spec = _checked(ScheduleSpec(cron=cron, interval=interval, timezone=timezone))
    state.discover()
    _require_workflow(workflow_name)

    async def go(storage: StorageBackend) -> Schedule:
        if schedule_id and await storage.get_schedule(schedule_id) is not None:
            raise fail(f"Schedule already exists: {schedule_id}; choose another --schedule-id.")
        return await create_schedule(
            workflow_name,
            spec,
            overlap_policy=OverlapPolicy(overlap),
            schedule_id=schedule_id,
            storage=storage,
        )

    made = state.run(go)
    _emit_schedule(state, made, f"[green]Created[/] schedule [bold]{made.schedule_id}[/]")


@schedules.command("show")
@click.argument("schedule_id")
@click.pass_obj
def show(state: CLIState, schedule_id: str) -> None:
    """Show one schedule: its spec, next and last runs, counters."""
    _emit_schedule(state, _fetch(state, schedule_id))


@schedules.command("pause")
@click.argument("schedule_id")
@click.pass_obj
def pause(state: CLIState, schedule_id: str) -> None:
    """Stop a schedule from firing (runs already going carry on)."""
    _fetch(state, schedule_id, alive=True)
    paused = state.run(lambda storage: pause_schedule(schedule_id, storage=storage))
    _status_change(state, paused, "[yellow]Paused[/]")


@schedules.command("resume")
@click.argument("schedule_id")
@click.pass_obj
def resume(state: CLIState, schedule_id: str) -> None:
    """Make a paused schedule fire again, from its next slot after now."""
    _fetch(state, schedule_id, alive=True)
    resumed = state.run(lambda storage: resume_schedule(schedule_id, storage=storage))
    _status_change(state, resumed, "[green]Resumed[/]")


@schedules.command("delete")
@click.argument("schedule_id")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(state: CLIState, schedule_id: str, force: bool) -> None:
    """Delete a schedule (kept in storage with status deleted; it never fires again)."""
    found = _fetch(state, schedule_id)
    if not force:
        if not sys.stdin.isatty():
            raise fail(
                f"Not a terminal, so nobody can confirm: use --force to delete {schedule_id}."
            )
        question = f"Delete schedule {schedule_id} of workflow {found.workflow_name}?"
        click.confirm(question, abort=True, err=True)
    state.run(lambda storage: delete_schedule(schedule_id, storage=storage))
    emit(
        state,
        {"schedule_id": schedule_id, "deleted": True},
        table=lambda out: out.print(f"[bright_black]Deleted[/] schedule [bold]{schedule_id}[/]"),
        plain=[schedule_id],
    )


@schedules.command("trigger")
@click.argument("schedule_id")
@_WAIT
@click.pass_obj
def trigger(state: CLIState, schedule_id: str, wait: bool) -> None:
    """Start a run of the schedule now, outside its slots (the next slot is unchanged)."""
    found = _fetch(state, schedule_id, alive=True)
    state.discover()
    _require_workflow(found.workflow_name)
    state.configure_engine()

    async def go(storage: StorageBackend) -> str:
        finish = background_runs(state, f"Running {found.workflow_name}")
        run_id = await trigger_schedule(schedule_id, storage=storage)
        await finish(wait)
        return run_id

    run_id = state.run(go)
    data = {
        "schedule_id": schedule_id,
        "run_id": run_id,
        "triggered": True,
        "workflow_name": found.workflow_name,
    }
    emit(
        state,
        data,
        table=lambda out: out.print(
            f"[green]Triggered[/] schedule [bold]{schedule_id}[/]: run {run_id}"
        ),
        plain=[run_id],
    )


@schedules.command("backfill")
@click.argument("schedule_id")
@click.option("--start", "start_text", required=True, help="ISO 8601 start (naive = UTC).")
@click.option("--end", "end_text", required=True, help="ISO 8601 end, exclusive (naive = UTC).")
@_WAIT
@click.pass_obj
def backfill(state: CLIState, schedule_id: str, start_text: str, end_text: str, wait: bool) -> None:
    """Start one run per slot of the schedule in [--start, --end).

    Backfilling the same slots again starts nothing new (the same run ids come back).

    \b
    Example:
      pyworkflow --module myapp.workflows schedules backfill sched_1a2b3c4d5e6f \\
          --start 2026-01-01T00:00:00Z --end 2026-01-08T00:00:00Z
    """
    start, end = _parse_time(start_text, "--start"), _parse_time(end_text, "--end")
    if start >= end:
        raise fail(f"--start ({start.isoformat()}) must be before --end ({end.isoformat()}).")
    found = _fetch(state, schedule_id, alive=True)
    state.discover()
    _require_workflow(found.workflow_name)
    state.configure_engine()
    slots = len(calculate_backfill_times(found.spec, start, end))

    async def go(storage: StorageBackend) -> list[str]:
        finish = background_runs(state, f"Backfilling {slots} run(s)")
        run_ids = await backfill_schedule(schedule_id, start, end, storage=storage)
        await finish(wait)
        return run_ids

    run_ids = state.run(go)
    data = {
        "schedule_id": schedule_id,
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "runs_created": len(run_ids),
        "run_ids": run_ids,
    }

    def table(out: Console) -> None:
        if not run_ids:
            out.print(f"[yellow]No slots[/] of {schedule_id} in that range.")
            return
        out.print(f"[green]Backfilled[/] {len(run_ids)} run(s) of {schedule_id}:")
        for run_id in run_ids:
            out.print(f"  {run_id}")

    emit(state, data, table=table, plain=run_ids)


@schedules.command("update")
@click.argument("schedule_id")
@click.option("--cron", help="New cron expression (replaces the interval).")
@click.option("--interval", help="New interval (replaces the cron expression).")
@click.option("--timezone", help="New IANA time zone.")
@click.option("--overlap", type=click.Choice(_OVERLAP), help="New overlap policy.")
@click.pass_obj
def update(
    state: CLIState,
    schedule_id: str,
    cron: str | None,
    interval: str | None,
    timezone: str | None,
    overlap: str | None,
) -> None:
    """Change a schedule's rule, time zone or overlap policy (the next slot is recomputed).

    \b
    Example:
      pyworkflow schedules update sched_1a2b3c4d5e6f --cron "30 8 * * *" --overlap allow_all
    """
    if not (cron or interval or timezone or overlap):
        raise fail("Nothing to change: give --cron, --interval, --timezone or --overlap.")
    _rule(cron, interval, required=False)
    found = _fetch(state, schedule_id, alive=True)
    spec = None
    if cron or interval or timezone:
        spec = found.spec
        if cron or interval:
            spec = replace(spec, cron=cron, interval=interval, calendar=None)
        spec = _checked(replace(spec, timezone=timezone or spec.timezone))
    policy = OverlapPolicy(overlap) if overlap else None
    updated = state.run(lambda storage: update_schedule(schedule_id, spec, policy, storage=storage))
    _emit_schedule(state, updated, f"[green]Updated[/] schedule [bold]{schedule_id}[/]")
