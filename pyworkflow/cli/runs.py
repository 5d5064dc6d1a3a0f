"""``pyworkflow runs``: list runs, show one, show its event log.

JSON keys follow upstream: ``runs list`` items ``{run_id, workflow_name, status,
created_at, started_at, completed_at, duration}``; ``runs logs`` items
``{event_id, sequence, type, timestamp, data}``.

Example (shell)::

    pyworkflow runs list --status suspended
    pyworkflow --output json runs status run_1a2b3c4d5e6f7a8b
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from pyworkflow.engine.events import Event
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import RunStatus, WorkflowRun

T = TypeVar("T")


def _run(state: Any, action: Callable[[StorageBackend], Awaitable[T]]) -> T:
    async def go() -> T:
        storage = state.storage()
        await storage.connect()
        try:
            return await action(storage)
        finally:
            await storage.disconnect()

    return asyncio.run(go())


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _duration(run: WorkflowRun) -> float | None:
    if run.started_at is None or run.completed_at is None:
        return None
    return round((run.completed_at - run.started_at).total_seconds(), 3)


def _summary(run: WorkflowRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "workflow_name": run.workflow_name,
        "status": run.status.value,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "completed_at": _iso(run.completed_at),
        "duration": _duration(run),
    }


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return deserialize(text, allow_pickle=False)
    except Exception:
        return text


def _emit(output: str, data: Any, table: Callable[[], None], plain: list[str]) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif output == "plain":
        for line in plain:
            click.echo(line)
    else:
        table()


@click.group()
def runs() -> None:
    """Inspect workflow runs."""


@runs.command("list")
@click.option("-q", "--query", help="Substring of the workflow name or input.")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_obj
def list_runs(state: Any, query: str | None, status: str | None, limit: int) -> None:
    """List runs, newest first."""

    async def fetch(storage: StorageBackend) -> list[WorkflowRun]:
        found, _ = await storage.list_runs(
            query=query, status=RunStatus(status) if status else None, limit=limit
        )
        return found

    found = _run(state, fetch)
    rows = [_summary(r) for r in found]

    def table() -> None:
        if not rows:
            click.echo("No runs.")
            return
        click.echo(f"{'RUN ID':22} {'WORKFLOW':24} {'STATUS':16} CREATED")
        for r in rows:
            click.echo(
                f"{r['run_id']:22} {r['workflow_name'][:24]:24} {r['status']:16} {r['created_at']}"
            )

    _emit(state.output, rows, table, [r["run_id"] for r in rows])


@runs.command("status")
@click.argument("run_id")
@click.pass_obj
def status(state: Any, run_id: str) -> None:
    """Show one run."""
    run = _run(state, lambda s: s.get_run(run_id))
    if run is None:
        raise click.ClickException(f"Workflow run not found: {run_id}")
    data = _summary(run) | {
        "input_args": _decode(run.input_args),
        "input_kwargs": _decode(run.input_kwargs),
        "result": _decode(run.result),
        "error": run.error,
        "context": run.context,
    }

    def table() -> None:
        for key, value in data.items():
            click.echo(f"{key:14} {value}")

    _emit(state.output, data, table, [run.status.value])


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "sequence": event.sequence,
        "type": event.type.value,
        "timestamp": _iso(event.timestamp),
        "data": event.data,
    }


@runs.command("logs")
@click.argument("run_id")
@click.option("--filter", "type_filter", help="Case-insensitive substring of the event type.")
@click.pass_obj
def logs(state: Any, run_id: str, type_filter: str | None) -> None:
    """Show a run's event log."""

    async def fetch(storage: StorageBackend) -> tuple[WorkflowRun | None, list[Event]]:
        return await storage.get_run(run_id), await storage.get_events(run_id)

    run, events = _run(state, fetch)
    if run is None and not events:
        raise click.ClickException(f"Workflow run not found: {run_id}")
    if type_filter:
        events = [e for e in events if type_filter.lower() in e.type.value.lower()]
    rows = [_event_row(e) for e in events]

    def table() -> None:
        for e in events:
            detail = {k: v for k, v in e.data.items() if k not in ("traceback", "args", "kwargs")}
            click.echo(
                f"{e.sequence:4}  {_iso(e.timestamp)}  {e.type.value:24} "
                f"{json.dumps(detail, default=str)[:100]}"
            )

    _emit(state.output, rows, table, [f"{e.sequence}: {e.type.value}" for e in events])
