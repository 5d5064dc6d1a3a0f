"""Watching a run from ``pyworkflow workflows run``: poll storage, show progress, stop cleanly.

The watcher reads the run and its new events every :data:`POLL_INTERVAL` seconds with
``asyncio.sleep`` in between, so on the local runtime the in-process timer service keeps
running in the same event loop and wakes sleeps while we wait. Progress goes to stderr:
a rich spinner on a terminal, otherwise one plain line per change, so stdout carries only
the command's result (:func:`report`).

Example:
    >>> from pyworkflow.engine.events import Event, EventType
    >>> tracker = EventTracker()
    >>> tracker.add(Event(run_id="run_1", type=EventType.STEP_STARTED, sequence=0,
    ...                   data={"step_id": "step_charge_1", "step_name": "charge"}))
    >>> tracker.add(Event(run_id="run_1", type=EventType.HOOK_CREATED, sequence=1,
    ...                   data={"hook_id": "hook_approval_2", "name": "approval"}))
    >>> tracker.latest, tracker.pending_hooks()
    ('waiting for hook approval', ['approval'])
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Console
from rich.status import Status
from rich.text import Text

from pyworkflow.cli.output import emit, fields_table
from pyworkflow.cli.state import CLIState, fail
from pyworkflow.core.registry import WorkflowMetadata
from pyworkflow.engine.events import Event, EventType
from pyworkflow.engine.executor import start
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun

#: Seconds between two reads of the run while watching.
POLL_INTERVAL = 0.5


def _clock(iso_text: Any) -> str:
    """``HH:MM:SS`` in local time of an ISO timestamp (the text itself if unparsable)."""
    try:
        return datetime.fromisoformat(str(iso_text)).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return str(iso_text)


@dataclass
class EventTracker:
    """Follows a run's log: the newest sequence seen, step names, hooks still waiting.

    Example:
        >>> EventTracker().latest
        'starting'
    """

    last_sequence: int = -1
    latest: str = "starting"
    step_names: dict[str, str] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)

    def add(self, event: Event) -> None:
        """Take one event into account (events must come in sequence order)."""
        if event.sequence is not None:
            self.last_sequence = max(self.last_sequence, event.sequence)
        data = event.data
        if event.type is EventType.STEP_STARTED:
            self.step_names[str(data.get("step_id"))] = str(data.get("step_name"))
        elif event.type is EventType.HOOK_CREATED:
            self.hooks[str(data.get("hook_id"))] = str(data.get("name") or data.get("hook_id"))
        elif event.type in (EventType.HOOK_RECEIVED, EventType.HOOK_EXPIRED):
            self.hooks.pop(str(data.get("hook_id")), None)
        self.latest = self.describe(event)

    def pending_hooks(self) -> list[str]:
        """Names of the hooks created and neither received nor expired yet."""
        return list(self.hooks.values())

    def describe(self, event: Event) -> str:
        """A short human phrase for an event, e.g. ``step charge completed``."""
        data, kind = event.data, event.type
        step = self.step_names.get(str(data.get("step_id")), data.get("step_id"))
        hook_name = data.get("name") or data.get("hook_id")
        child = data.get("child_workflow_name")
        phrases: dict[EventType, str] = {
            EventType.WORKFLOW_STARTED: "started",
            EventType.STEP_STARTED: f"step {data.get('step_name')} running",
            EventType.STEP_COMPLETED: f"step {data.get('step_name') or step} completed",
            EventType.STEP_FAILED: f"step {step} failed: {data.get('error')}",
            EventType.STEP_RETRYING: f"step {step} will retry (attempt {data.get('attempt')})",
            EventType.SLEEP_STARTED: f"sleeping until {_clock(data.get('resume_at'))}",
            EventType.SLEEP_COMPLETED: "woke up",
            EventType.HOOK_CREATED: f"waiting for hook {hook_name}",
            EventType.HOOK_RECEIVED: "hook received",
            EventType.CHILD_WORKFLOW_STARTED: f"child workflow {child} started",
        }
        return phrases.get(kind, kind.value)


class Progress:
    """Shows the watched run's state on stderr: a spinner on a terminal, plain lines otherwise.

    Example:
        >>> progress = Progress(enabled=False)
        >>> progress.update("run_1", "running", "step charge completed")
        >>> progress.close()
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._console = Console(file=sys.stderr)
        self._status: Status | None = None
        self._last = ""

    def update(self, run_id: str, status: str, latest: str) -> None:
        """Show the run's status and latest event (a plain line only when it changed)."""
        if not self.enabled:
            return
        line = f"{run_id}: {status} - {latest}"
        if self._console.is_terminal:
            if self._status is None:
                self._status = self._console.status(Text(line))
                self._status.start()
            else:
                self._status.update(Text(line))
        elif line != self._last:
            click.echo(f"[{datetime.now().strftime('%H:%M:%S')}] {line}", err=True)
        self._last = line

    def note(self, message: str) -> None:
        """Print a message once, above the spinner."""
        if self._console.is_terminal:
            self._console.print(message, highlight=False, markup=False)
        else:
            click.echo(message, err=True)

    def close(self) -> None:
        """Remove the spinner."""
        if self._status is not None:
            self._status.stop()
            self._status = None


@dataclass
class RunRequest:
    """What ``workflows run`` was asked to start, after parsing and checking.

    Example:
        >>> async def wf(x: int) -> int: ...
        >>> RunRequest(WorkflowMetadata("wf", wf, wf), {"x": 1}, "local").durable
        True
    """

    workflow: WorkflowMetadata
    kwargs: dict[str, Any]
    runtime: str
    durable: bool = True
    idempotency_key: str | None = None
    wait: bool = True
    timeout: float | None = None


@dataclass
class Watch:
    """What is being watched; read after Ctrl-C to tell the user where the run stands.

    ``error`` is the exception ``start()`` raised (the local runtime re-raises a
    failure); ``traceback`` the one recorded in the run's ``workflow.failed`` event.

    Example:
        >>> Watch("run_1").status
        'pending'
    """

    run_id: str | None = None
    status: str = "pending"
    run: WorkflowRun | None = None
    timed_out: bool = False
    hinted: bool = False
    error: BaseException | None = None
    traceback: str | None = None
    started_run_id: str | None = None


def hook_hint(run_id: str, names: list[str]) -> str:
    """The one-time message for a run waiting on hooks.

    Example:
        >>> hook_hint("run_1", ["approval"]).splitlines()[0]
        "Run run_1 is waiting for hook 'approval'. Still watching; to resume it:"
    """
    joined = ", ".join(f"'{name}'" for name in names)
    return (
        f"Run {run_id} is waiting for hook {joined}. Still watching; to resume it:\n"
        f"  pyworkflow hooks list --run-id {run_id}\n"
        "  pyworkflow hooks resume <token> --payload '{...}'"
    )


async def watch_run(
    storage: StorageBackend,
    watch: Watch,
    progress: Progress,
    timeout: float | None = None,
) -> Watch:
    """Poll until the run ends (following continue-as-new) or ``timeout`` seconds pass."""
    assert watch.run_id is not None
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    tracker = EventTracker()
    while True:
        run = await storage.get_run(watch.run_id)
        watch.run = run
        watch.status = run.status.value if run is not None else "pending"
        if run is not None and run.status is RunStatus.CONTINUED_AS_NEW and run.continued_to_run_id:
            progress.note(f"Run {run.run_id} continued as new run {run.continued_to_run_id}")
            watch.run_id, tracker = run.continued_to_run_id, EventTracker()
            continue
        if run is not None and run.status in TERMINAL_STATUSES:
            return watch
        for event in await storage.get_events_after(watch.run_id, tracker.last_sequence):
            tracker.add(event)
        progress.update(watch.run_id, watch.status, tracker.latest)
        waiting = tracker.pending_hooks()
        if waiting and not watch.hinted and watch.status == RunStatus.SUSPENDED.value:
            progress.note(hook_hint(watch.run_id, waiting))
            watch.hinted = True
        if deadline is not None and loop.time() >= deadline:
            watch.timed_out = True
            return watch
        await asyncio.sleep(POLL_INTERVAL)


async def start_and_watch(
    storage: StorageBackend, request: RunRequest, watch: Watch, progress: Progress
) -> Watch:
    """``start()`` the run, then watch it (``request.wait``) or read it once."""
    started_after = datetime.now(UTC) - timedelta(seconds=1)
    try:
        watch.run_id = await start(
            request.workflow.func,
            runtime=request.runtime,
            durable=request.durable,
            idempotency_key=request.idempotency_key,
            **request.kwargs,
        )
    except Exception as error:
        if request.durable:
            # start() attaches the failed run's id to the error it re-raises.
            failed_id = getattr(error, "run_id", None)
            watch.run_id = (
                failed_id
                if isinstance(failed_id, str)
                else await _started_run_id(storage, request, started_after)
            )
            if watch.run_id is None:
                raise  # nothing was started: a plain error, not a failed run
        watch.error = error
    watch.started_run_id = watch.run_id
    if not request.durable:
        # A transient run stores nothing: start() returned after it ended.
        watch.status = "failed" if watch.error is not None else "completed"
        return watch
    assert watch.run_id is not None
    if request.wait:
        await watch_run(storage, watch, progress, request.timeout)
    else:
        watch.run = await storage.get_run(watch.run_id)
        watch.status = watch.run.status.value if watch.run is not None else "pending"
    if watch.status == RunStatus.FAILED.value:
        failed = await storage.get_latest_event(watch.run_id, EventType.WORKFLOW_FAILED.value)
        watch.traceback = failed.data.get("traceback") if failed is not None else None
    return watch


async def _started_run_id(
    storage: StorageBackend, request: RunRequest, started_after: datetime
) -> str | None:
    """The run a failed ``start()`` created, if any (it raises instead of returning the id)."""
    if request.idempotency_key is not None:
        run = await storage.get_run_by_idempotency_key(request.idempotency_key)
        return run.run_id if run is not None else None
    name = request.workflow.name
    runs, _ = await storage.list_runs(query=name, start_time=started_after, limit=20)
    return next((run.run_id for run in runs if run.workflow_name == name), None)


def _decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return deserialize(text, allow_pickle=False)
    except Exception:
        # Not decodable without unpickling: show the stored text rather than nothing.
        return text


def run_data(request: RunRequest, watch: Watch) -> dict[str, Any]:
    """The JSON of ``workflows run``: ``result`` and ``error`` only once the run ended.

    Example:
        >>> async def wf() -> None: ...
        >>> request = RunRequest(WorkflowMetadata("wf", wf, wf), {}, "local")
        >>> run_data(request, Watch("run_1", status="suspended"))
        {'run_id': 'run_1', 'workflow_name': 'wf', 'runtime': 'local', 'status': 'suspended'}
    """
    data: dict[str, Any] = {
        "run_id": watch.run_id,
        "workflow_name": request.workflow.name,
        "runtime": request.runtime,
        "status": watch.status,
    }
    run = watch.run
    if watch.status in ("completed", "failed", "cancelled", "continued_as_new"):
        data["result"] = _decode(run.result) if run is not None else None
        data["error"] = run.error if run is not None else _error_text(watch.error)
    if watch.started_run_id not in (None, watch.run_id):
        # Continued as new: the run started is reported, the one that ended is named too.
        data["run_id"] = watch.started_run_id
        data["last_run_id"] = watch.run_id
    return data


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else str(error) or type(error).__name__


def _duration(watch: Watch) -> str | None:
    run = watch.run
    if run is None or run.started_at is None or run.completed_at is None:
        return None
    return f"{(run.completed_at - run.started_at).total_seconds():.2f}s"


def report(state: CLIState, request: RunRequest, watch: Watch) -> None:
    """Print the run's outcome; exit 124 after ``--timeout``, 1 if it failed or was cancelled."""
    data = run_data(request, watch)

    def table(out: Console) -> None:
        shown = {**data, "duration": _duration(watch)}
        if data.get("result") is not None:
            shown["result"] = json.dumps(data["result"], default=str)
        fields_table(out, shown)
        if not request.durable and data["status"] == "completed":
            out.print("Transient run: nothing was stored, so its result is not shown.")
        elif "result" not in data:
            out.print(f"Follow it with `pyworkflow runs status {data['run_id']}`.")

    plain = [str(data["run_id"]), data["status"]]
    if data["status"] == "completed":
        plain.append(json.dumps(data.get("result"), default=str))
    emit(state, data, table=table, plain=plain)
    if watch.timed_out:
        click.echo(
            f"Stopped watching run {data['run_id']} after {request.timeout:g}s (still "
            f"{data['status']}); see `pyworkflow runs status {data['run_id']}`",
            err=True,
        )
        click.get_current_context().exit(124)
    if data["status"] in ("failed", "cancelled"):
        if state.verbose:
            _print_traceback(watch)
        what = f"Run {data['run_id']}" if data["run_id"] else f"Workflow '{request.workflow.name}'"
        raise fail(f"{what} {data['status']}: {data.get('error')}")


def _print_traceback(watch: Watch) -> None:
    if watch.traceback:
        click.echo(watch.traceback.rstrip(), err=True)
    elif watch.error is not None:
        click.echo("".join(traceback.format_exception(watch.error)).rstrip(), err=True)
