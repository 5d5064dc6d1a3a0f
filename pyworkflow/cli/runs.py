"""``pyworkflow runs``: list, inspect, follow, cancel and explain workflow runs.

JSON keys follow upstream: ``list``/``children``/``chain`` items are run summaries
``{run_id, workflow_name, status, created_at, started_at, completed_at, duration}``
(``children`` adds ``nesting_depth`` and ``parent_run_id``, ``chain`` adds
``continued_from_run_id`` and ``continued_to_run_id``); ``status`` adds ``input_args,
input_kwargs, result, error, context``; ``logs`` items are ``{event_id, sequence, type,
timestamp, data}`` (one per line, JSON Lines, with ``--follow``); ``cancel`` prints
``{run_id, cancelled, status}``; ``timeline`` prints ``{run_id, workflow_name, status,
duration, items}`` (see :mod:`pyworkflow.cli.timeline`).

Example (shell)::

    pyworkflow runs list --status suspended
    pyworkflow --output json runs status run_1a2b3c4d5e6f7a8b
    pyworkflow runs logs run_1a2b3c4d5e6f7a8b --follow
    pyworkflow runs timeline run_1a2b3c4d5e6f7a8b

Example:
    >>> sorted(runs.commands)
    ['cancel', 'chain', 'children', 'list', 'logs', 'status', 'timeline']
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from pyworkflow.cli import run_logs
from pyworkflow.cli.output import console, emit, fields_table, list_table
from pyworkflow.cli.run_views import RUN_COLUMNS, details, summary, table_row
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.cli.timeline import build_timeline
from pyworkflow.cli.timeline_view import render
from pyworkflow.engine.cancel_api import cancel_workflow
from pyworkflow.engine.events import Event
from pyworkflow.engine.executor import get_workflow_chain
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun

_STATUS = click.Choice([s.value for s in RunStatus], case_sensitive=False)
_WHEN = click.DateTime(
    [
        "%Y-%m-%d",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S.%f",
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S.%f%z",
    ]
)


def _not_found(run_id: str) -> click.ClickException:
    return fail(f"Workflow run not found: {run_id} (see `pyworkflow runs list`)")


def _utc(value: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC: every time the CLI prints is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _get_run(state: CLIState, run_id: str) -> WorkflowRun:
    run = state.run(lambda storage: storage.get_run(run_id))
    if run is None:
        raise _not_found(run_id)
    return run


@click.group()
def runs() -> None:
    """Inspect, follow, explain and cancel workflow runs.

    \b
    Example:
      pyworkflow runs list
      pyworkflow runs timeline run_1a2b3c4d5e6f7a8b
    """


@runs.command("list")
@click.option("-q", "--query", help="Case-insensitive text in the workflow name or kwargs.")
@click.option("--status", type=_STATUS, help="Only runs with this status.")
@click.option("--start-time", type=_WHEN, help="Created at or after this time (UTC if no zone).")
@click.option("--end-time", type=_WHEN, help="Created before this time (UTC if no zone).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_obj
def list_runs(
    state: CLIState,
    query: str | None,
    status: str | None,
    start_time: datetime | None,
    end_time: datetime | None,
    limit: int,
) -> None:
    """List runs, newest first.

    \b
    Example:
      pyworkflow runs list --status suspended --start-time 2026-01-01
    """

    async def fetch(storage: StorageBackend) -> list[WorkflowRun]:
        found, _ = await storage.list_runs(
            query=query,
            status=RunStatus(status.lower()) if status else None,
            start_time=_utc(start_time),
            end_time=_utc(end_time),
            limit=limit,
        )
        return found

    found = state.run(fetch)
    emit(
        state,
        [summary(r) for r in found],
        table=lambda out: list_table(
            out, [table_row(r) for r in found], RUN_COLUMNS, empty="No runs found."
        ),
        plain=[r.run_id for r in found],
    )


@runs.command("status")
@click.argument("run_id")
@click.pass_obj
def status(state: CLIState, run_id: str) -> None:
    """Show one run with its decoded inputs and result.

    Also its status, times, error and step context.

    \b
    Example:
      pyworkflow --output json runs status run_1a2b3c4d5e6f7a8b
    """
    run = _get_run(state, run_id)
    data = details(run)
    emit(
        state,
        data,
        table=lambda out: fields_table(out, data, title=f"Run {run_id}"),
        plain=[run.status.value],
    )


@runs.command("logs")
@click.argument("run_id")
@click.option("--filter", "type_filter", help="Case-insensitive text in the event type.")
@click.option(
    "-f", "--follow", is_flag=True, help="Stream new events until the run ends (Ctrl-C stops)."
)
@click.pass_obj
def logs(state: CLIState, run_id: str, type_filter: str | None, follow: bool) -> None:
    """Show a run's event log; --follow streams new events.

    --follow checks for new events every 0.5 s and exits (code 0) once the run has
    ended and its last events are printed; Ctrl-C stops it (code 130). With
    --output json and --follow, each event is one JSON object per line (JSON Lines).

    \b
    Example:
      pyworkflow runs logs run_1a2b3c4d5e6f7a8b --filter step.
      pyworkflow --output json runs logs run_1a2b3c4d5e6f7a8b -f | jq -r .type
    """

    async def fetch(storage: StorageBackend) -> tuple[WorkflowRun | None, list[Event]]:
        return await storage.get_run(run_id), await storage.get_events(run_id)

    run, events = state.run(fetch)
    if run is None and not events:
        raise _not_found(run_id)
    if follow:
        _follow(state, run_id, type_filter)
        return
    events = [e for e in events if run_logs.matches(e, type_filter)]
    emit(
        state,
        [run_logs.event_row(e) for e in events],
        table=lambda out: run_logs.events_table(out, events, title=f"Events of {run_id}"),
        plain=[f"{e.sequence}: {e.type.value}" for e in events],
    )


def _follow(state: CLIState, run_id: str, type_filter: str | None) -> None:
    out = console()

    def show(events: list[Event]) -> None:
        for event in events:
            if state.output == "json":
                click.echo(json.dumps(run_logs.event_row(event), default=str))
            elif state.output == "plain":
                click.echo(f"{event.sequence}: {event.type.value}")
            else:
                out.print(run_logs.event_line(event, out.width))
        sys.stdout.flush()

    try:
        final = state.run(lambda storage: run_logs.follow(storage, run_id, show, type_filter))
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None
    if final is RunStatus.CONTINUED_AS_NEW:
        chain = state.run(lambda storage: storage.get_run(run_id))
        if chain is not None and chain.continued_to_run_id:
            click.echo(f"Run continued as new: {chain.continued_to_run_id}", err=True)


@runs.command("cancel")
@click.argument("run_id")
@click.option("--wait/--no-wait", default=False, show_default=True, help="Wait until it ends.")
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds to wait with --wait.",
)
@click.option("--reason", help="Why; recorded in the cancellation event.")
@click.pass_obj
def cancel(state: CLIState, run_id: str, wait: bool, timeout: float, reason: str | None) -> None:
    """Cancel a run; a waiting one stops at once.

    A running run stops at its next step, sleep, hook or child call. A run that
    already ended is left alone (a warning, exit code 0). Give --module so that
    the workflow's own clean-up code (except CancellationError) runs here.

    \b
    Example:
      pyworkflow --module myapp runs cancel run_1a2b3c4d5e6f7a8b --wait --reason "duplicate"
    """
    run = _get_run(state, run_id)
    if run.status in TERMINAL_STATUSES:
        click.echo(
            f"Warning: run {run_id} is already {run.status.value}; nothing to cancel.", err=True
        )
        _cancel_result(state, run_id, False, run.status.value, "")
        return
    state.configure_engine()
    state.discover()

    async def act(storage: StorageBackend) -> tuple[bool, WorkflowRun | None]:

        try:
            done = await cancel_workflow(
                run_id, reason=reason, wait=wait, timeout=timeout, storage=storage
            )
        except TimeoutError:
            raise fail(
                f"Run {run_id} did not end within {timeout:g}s after the cancellation request; "
                f"it will stop at its next step (check `pyworkflow runs status {run_id}`)."
            ) from None
        return done, await storage.get_run(run_id)

    done, after = state.run(act)
    now = (after or run).status.value
    said = "Cancellation requested for" if done else "Nothing to cancel: already ended:"
    _cancel_result(state, run_id, done, now, f"{said} {run_id} (status: {now})")


def _cancel_result(state: CLIState, run_id: str, done: bool, status: str, text: str) -> None:
    data = {"run_id": run_id, "cancelled": done, "status": status}
    emit(
        state,
        data,
        table=lambda out: out.print(text) if text else None,
        plain=[status],
    )


@runs.command("children")
@click.argument("run_id")
@click.option("--status", type=_STATUS, help="Only children with this status.")
@click.pass_obj
def children(state: CLIState, run_id: str, status: str | None) -> None:
    """List the child runs a run started, oldest first.

    \b
    Example:
      pyworkflow runs children run_1a2b3c4d5e6f7a8b --status failed
    """

    async def fetch(storage: StorageBackend) -> tuple[WorkflowRun | None, list[WorkflowRun]]:
        wanted = RunStatus(status.lower()) if status else None
        return await storage.get_run(run_id), await storage.get_children(run_id, wanted)

    parent, found = state.run(fetch)
    if parent is None:
        raise _not_found(run_id)

    def extra(run: WorkflowRun) -> dict[str, Any]:
        return {"nesting_depth": run.nesting_depth, "parent_run_id": run.parent_run_id}

    emit(
        state,
        [summary(r) | extra(r) for r in found],
        table=lambda out: list_table(
            out,
            [table_row(r, **extra(r)) for r in found],
            [*RUN_COLUMNS, ("nesting_depth", "Depth")],
            title=f"Children of {run_id}",
            empty="No child runs found.",
        ),
        plain=[r.run_id for r in found],
    )


@runs.command("chain")
@click.argument("run_id")
@click.pass_obj
def chain(state: CLIState, run_id: str) -> None:
    """Show the continue-as-new chain of a run.

    Oldest first; → marks RUN_ID.

    \b
    Example:
      pyworkflow runs chain run_1a2b3c4d5e6f7a8b
    """

    found = state.run(lambda storage: get_workflow_chain(run_id, storage=storage))
    if not found:
        raise _not_found(run_id)

    def links(run: WorkflowRun) -> dict[str, Any]:
        return {
            "continued_from_run_id": run.continued_from_run_id,
            "continued_to_run_id": run.continued_to_run_id,
        }

    rows = [table_row(r, here="→" if r.run_id == run_id else "") for r in found]
    emit(
        state,
        [summary(r) | links(r) for r in found],
        table=lambda out: list_table(
            out, rows, [("here", ""), *RUN_COLUMNS], title=f"Chain of {run_id}"
        ),
        plain=[r.run_id for r in found],
    )


@runs.command("timeline")
@click.argument("run_id")
@click.pass_obj
def timeline(state: CLIState, run_id: str) -> None:
    """Show where a run's time went, call by call.

    One row per step, sleep, hook and child workflow (plus cancellation and
    continue-as-new), each with its status, start offset from the run's start,
    duration, attempts and a bar showing its share of the run; the last row is
    the run's total.

    \b
    Example:
      pyworkflow runs timeline run_1a2b3c4d5e6f7a8b
    """

    async def fetch(
        storage: StorageBackend,
    ) -> tuple[WorkflowRun | None, list[Event], list[WorkflowRun]]:
        run = await storage.get_run(run_id)
        if run is None:
            return None, [], []
        return run, await storage.get_events(run_id), await storage.get_children(run_id)

    run, events, kids = state.run(fetch)
    if run is None:
        raise _not_found(run_id)
    built = build_timeline(run, events, {k.run_id: k for k in kids})
    data = built.to_dict()
    emit(
        state,
        data,
        table=lambda out: render(out, built),
        plain=[f"{i['kind']} {i['name']} {i['status']}" for i in data["items"]],
    )
