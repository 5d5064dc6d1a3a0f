"""``pyworkflow runs logs``: a run's event log as rows, a table, and a live follow loop.

``--follow`` polls the storage (every 0.5 s) for events committed since the last poll,
prints them, and returns once the run has reached a terminal status and its last events
are printed. With ``--output json`` each event is then one compact JSON object per line
(JSON Lines), so ``pyworkflow --output json runs logs RUN -f | jq -c .type`` streams.

Example:
    >>> from pyworkflow.engine.events import create_sleep_started_event
    >>> from datetime import UTC, datetime
    >>> e = create_sleep_started_event("run_1", "sleep_1_5s", 5, datetime(2026, 1, 1, tzinfo=UTC))
    >>> event_detail(e)
    'sleep_1_5s 5s until 2026-01-01 00:00:00.000'
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pyworkflow.cli.output import iso
from pyworkflow.cli.run_views import seconds_text, short_time
from pyworkflow.engine.events import Event
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus

#: Seconds between two polls of ``runs logs --follow``.
POLL_INTERVAL = 0.5

_KIND_STYLES = {
    "workflow": "bold",
    "step": "cyan",
    "sleep": "yellow",
    "hook": "magenta",
    "child_workflow": "blue",
    "cancellation": "red",
    "context": "bright_black",
    "schedule": "blue",
}
_OUTCOME_STYLES = {"completed": "green", "received": "green", "failed": "red"}


def event_row(event: Event) -> dict[str, Any]:
    """The JSON item of one event: ``{event_id, sequence, type, timestamp, data}``.

    Example:
        >>> from pyworkflow.engine.events import create_hook_expired_event
        >>> sorted(event_row(create_hook_expired_event("run_1", "hook_a_1")))
        ['data', 'event_id', 'sequence', 'timestamp', 'type']
    """
    return {
        "event_id": event.event_id,
        "sequence": event.sequence,
        "type": event.type.value,
        "timestamp": iso(event.timestamp),
        "data": event.data,
    }


def matches(event: Event, type_filter: str | None) -> bool:
    """Whether the dotted type contains ``type_filter`` (case-insensitive).

    Example:
        >>> from pyworkflow.engine.events import create_hook_expired_event
        >>> matches(create_hook_expired_event("r", "h"), "HOOK."), matches(
        ...     create_hook_expired_event("r", "h"), "hook_expired")
        (True, False)
    """
    return not type_filter or type_filter.lower() in event.type.value.lower()


def type_text(kind: str) -> Text:
    """The dotted type coloured by what it is about, outcomes by how they went.

    Example:
        >>> type_text("step.failed").style, type_text("sleep.started").style
        ('red', 'yellow')
    """
    prefix, _, outcome = kind.partition(".")
    return Text(kind, style=_OUTCOME_STYLES.get(outcome) or _KIND_STYLES.get(prefix, ""))


def event_detail(event: Event, width: int = 80) -> str:
    """One short line saying what the event is about (no tokens, tracebacks or inputs).

    Example:
        >>> from pyworkflow.engine.events import create_step_failed_event
        >>> event_detail(create_step_failed_event("r", "step_a_1", "boom", "ValueError", True, 1))
        'step_a_1 attempt 1: ValueError: boom'
    """
    d = event.data
    kind = event.type.value
    if kind.startswith("step."):
        text = f"{d.get('step_name') or d.get('step_id')}"
        if "attempt" in d:
            text += f" attempt {d['attempt']}"
        if kind == "step.retrying":
            text += f" at {_when(d.get('resume_at'))}"
        elif d.get("error"):
            text += f": {d.get('error_type') or 'error'}: {d['error']}"
        return _cut(text, width)
    if kind == "sleep.started":
        took = seconds_text(float(d.get("duration_seconds") or 0))
        return _cut(f"{d.get('sleep_id')} {took} until {_when(d.get('resume_at'))}", width)
    if kind.startswith("hook."):
        name = d.get("name") or d.get("hook_id")
        return _cut(f"{name}" + (f": {d['error']}" if d.get("error") else ""), width)
    if kind.startswith("child_workflow."):
        text = f"{d.get('child_workflow_name') or 'child'} {d.get('child_run_id')}"
        return _cut(text + (f": {d['error']}" if d.get("error") else ""), width)
    return _cut(_generic(kind, d), width)


def _generic(kind: str, d: dict[str, Any]) -> str:
    if kind == "workflow.started":
        return f"{d.get('workflow_name')} args={d.get('args')} kwargs={d.get('kwargs')}"
    if kind == "workflow.completed":
        return f"result={d.get('result')}"
    if kind == "workflow.failed":
        return f"{d.get('error_type')}: {d.get('error')}"
    if kind == "workflow.continued_as_new":
        return f"-> {d.get('new_run_id')}"
    if kind == "sleep.completed":
        return str(d.get("sleep_id"))
    if kind in ("cancellation.requested", "workflow.cancelled", "workflow.interrupted"):
        return str(d.get("reason") or "")
    shown = {k: v for k, v in d.items() if k not in ("traceback", "args", "kwargs", "token")}
    return json.dumps(shown, default=str)


def _when(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return short_time(datetime.fromisoformat(str(value))) or "-"
    except ValueError:
        return str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def events_table(out: Console, events: Sequence[Event], title: str | None = None) -> None:
    """Print events as a table: sequence, time (UTC), coloured type, short detail.

    Example:
        >>> from io import StringIO
        >>> from pyworkflow.engine.events import create_hook_expired_event
        >>> buf = StringIO()
        >>> events_table(Console(file=buf, width=100), [create_hook_expired_event("r", "h_1")])
        >>> "hook.expired" in buf.getvalue()
        True
    """
    if not events:
        out.print("No events found.")
        return
    days = {e.timestamp.date() for e in events}
    one_day = len(days) == 1 and title is not None
    if one_day:
        title = f"{title} ({days.pop().isoformat()}, UTC)"
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("Seq", justify="right", no_wrap=True)
    table.add_column("Time" if one_day else "Time (UTC)", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    for event in events:
        when = short_time(event.timestamp) or ""
        table.add_row(
            str(event.sequence),
            when[11:] if one_day else when,
            type_text(event.type.value),
            event_detail(event),
        )
    out.print(table)


def event_line(event: Event, width: int = 120) -> Text:
    """One streamed line of ``--follow`` in table mode, at most ``width`` characters.

    Example:
        >>> from pyworkflow.engine.events import create_hook_expired_event
        >>> e = create_hook_expired_event("r", "h_1")
        >>> e.sequence = 7
        >>> event_line(e).plain.split()[0], event_line(e).plain.split()[3]
        ('7', 'hook.expired')
    """
    return Text.assemble(
        f"{event.sequence:>4}  {short_time(event.timestamp)}  ",
        type_text(f"{event.type.value:<26}"),
        f"  {event_detail(event, max(width - 59, 20))}",
    )


async def follow(
    storage: StorageBackend,
    run_id: str,
    show: Callable[[list[Event]], None],
    type_filter: str | None = None,
    poll: float = POLL_INTERVAL,
) -> RunStatus | None:
    """Pass new events (filtered) to ``show`` until the run ends; return its last status.

    The status is read before the events, so the events that led to a terminal status
    are always shown before returning. A log with no run record (nothing can say when
    it is over) is shown once and None returned.

    Example:
        >>> from pyworkflow.engine.events import create_workflow_started_event
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> from pyworkflow.storage.schemas import WorkflowRun
        >>> async def demo():
        ...     store = InMemoryStorageBackend()
        ...     await store.create_run(WorkflowRun(run_id="r", workflow_name="w",
        ...                                        status=RunStatus.COMPLETED))
        ...     await store.record_event(create_workflow_started_event("r", "w", "[]", "{}"))
        ...     return await follow(store, "r", lambda evs: print([e.type.value for e in evs]))
        >>> asyncio.run(demo()).value
        ['workflow.started']
        'completed'
    """
    seen = -1
    while True:
        run = await storage.get_run(run_id)
        events = [e for e in await storage.get_events(run_id) if (e.sequence or 0) > seen]
        if events:
            seen = max(e.sequence or 0 for e in events)
            shown = [e for e in events if matches(e, type_filter)]
            if shown:
                show(shown)
        if run is None or run.status in TERMINAL_STATUSES:
            return run.status if run is not None else None
        await asyncio.sleep(poll)
