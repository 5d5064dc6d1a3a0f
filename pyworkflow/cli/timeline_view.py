"""The table of ``pyworkflow runs timeline``: one row per call with a proportional bar.

Each bar spans the row's share of the run (``█`` done, ``░`` still open, ``◆`` an
instant such as a cancellation request), so where the time went is visible at a glance.
The last row is the run itself with its total.

Example:
    >>> from datetime import UTC, datetime
    >>> bar(2.0, 1.0, 4.0, width=8).plain
    '    ██'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pyworkflow.cli.output import STATUS_STYLES, status_text
from pyworkflow.cli.run_views import seconds_text, short_time
from pyworkflow.cli.timeline import POINT_KINDS, Item, Timeline

#: Characters of the bar column unless the console says otherwise (a quarter of its width).
BAR_WIDTH = 30

_KIND_STYLES = {
    "step": "cyan",
    "sleep": "yellow",
    "hook": "magenta",
    "child": "blue",
    "cancellation": "red",
    "failure": "red",
    "interruption": "magenta",
    "continue_as_new": "blue",
}
_OPEN_STYLES = {"sleeping": "yellow", "waiting": "yellow", "retrying": "yellow", "requested": "red"}


def bar(offset: float, duration: float | None, span: float, width: int = BAR_WIDTH) -> Text:
    """A bar from ``offset`` for ``duration`` seconds (None: open to the end) of ``span``.

    Example:
        >>> bar(0.0, None, 10.0, width=4).plain, bar(9.9, 0.0, 10.0, width=4).plain
        ('░░░░', '   █')
    """
    span = max(span, 1e-6)
    start = min(int(offset / span * width), width - 1)
    if duration is None:
        return Text(" " * start + "░" * (width - start))
    end = min(max(start + 1, round((offset + duration) / span * width)), width)
    return Text(" " * start + "█" * (end - start))


def render(out: Console, timeline: Timeline, now: datetime | None = None) -> None:
    """Print ``timeline`` as a table; ``now`` bounds the bars of a run still going.

    Example:
        >>> from io import StringIO
        >>> from datetime import UTC, datetime
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> buf = StringIO()
        >>> render(Console(file=buf, width=120), Timeline("run_1", "order", "running", at), at)
        >>> "still running" in buf.getvalue()
        True
    """
    origin = timeline.started_at
    span = timeline.duration
    if span is None:
        moments = [now or datetime.now(UTC)] + [i.ended_at or i.started_at for i in timeline.items]
        span = max((max(moments) - origin).total_seconds(), 0.001)
    wide = out.width >= 110  # room for a Detail column; else the detail goes under the name
    # The fixed columns (status, start, took, tries and padding) take about 42 characters.
    width = max(10, min(40, out.width // 4 if wide else (out.width - 42) // 2))
    table = _table(timeline, width, wide)
    for item in timeline.items:
        offset = item.offset(origin)
        what = Text.assemble((item.kind, _KIND_STYLES.get(item.kind, "")), " ", item.name)
        detail = describe(item)
        if detail and not wide:
            what.append(f"\n{detail}", style="bright_black")
        cells: list[Text | str] = [
            what,
            _status(item.status),
            f"+{seconds_text(max(offset, 0.0))}",
            seconds_text(item.duration) if item.duration is not None else "…",
            str(item.attempts) if item.attempts else "",
            _bar_of(item, offset, span, width),
        ]
        table.add_row(*cells, *([detail] if wide else []))
    table.add_section()
    total = timeline.duration
    cells = [
        Text("run total", style="bold"),
        _status(timeline.status),
        "+0ms",
        seconds_text(total) if total is not None else "…",
        "",
        bar(0.0, total, span, width),
    ]
    table.add_row(*cells, *([""] if wide else []))
    if total is None:
        out.print(table, f"The run is still {timeline.status}.")
    else:
        out.print(table)


def _table(timeline: Timeline, width: int, wide: bool) -> Table:
    started = short_time(timeline.started_at)
    title = f"{timeline.workflow_name} {timeline.run_id}, started {started} UTC"
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("Call", overflow="fold", min_width=16)
    table.add_column("Status", no_wrap=True)
    table.add_column("Start", justify="right", no_wrap=True)
    table.add_column("Took", justify="right", no_wrap=True)
    table.add_column("Tries", justify="right", no_wrap=True)
    table.add_column("Timeline", no_wrap=True, width=width)
    if wide:
        table.add_column("Detail", overflow="fold")
    return table


def _status(status: str) -> Text:
    if status in STATUS_STYLES:
        return status_text(status)
    return Text(status, style=_OPEN_STYLES.get(status, ""))


def _bar_of(item: Item, offset: float, span: float, width: int) -> Text:
    if item.kind in POINT_KINDS:
        start = min(int(offset / max(span, 1e-6) * width), width - 1)
        text = Text(" " * start + "◆")
    else:
        text = bar(offset, item.duration, span, width)
    text.stylize(STATUS_STYLES.get(item.status) or _OPEN_STYLES.get(item.status, ""))
    return text


def describe(item: Item) -> str:
    """The Detail cell: what a person wants to know about the row.

    Example:
        >>> from datetime import UTC, datetime
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> describe(Item("hook", "approval", "received", at, at, detail={"waited": 90.0}))
        'waited 1m30s'
    """
    d: dict[str, Any] = item.detail
    if item.kind == "step":
        error = d.get("error")
        if not error:
            return ""
        return f"retried after {error}" if item.status == "completed" else str(error)
    if item.kind == "sleep":
        return _sleep_text(d, item.status)
    if item.kind == "hook":
        if d.get("waited") is not None:
            text = f"waited {seconds_text(d['waited'])}"
            return text + (f": {d['error']}" if d.get("error") else "")
        expires = d.get("expires_at")
        return f"expires {_short(expires)}" if expires else "no expiry"
    if item.kind == "child":
        return f"{d.get('child_run_id')} ({d.get('child_status') or item.status})"
    if item.kind == "continue_as_new":
        return f"-> {d.get('new_run_id')}"
    for key in ("error", "reason"):
        if d.get(key):
            return str(d[key])
    return ""


def _sleep_text(d: dict[str, Any], status: str) -> str:
    planned = seconds_text(float(d.get("duration_seconds") or 0))
    late_by = d.get("late_by")
    if late_by is None:
        if status == "sleeping":
            return f"{planned}, wakes {_short(d.get('resume_at'))}"
        return f"{planned}, never woke"
    if late_by > 0 and d.get("late"):
        return f"{planned}, woke {seconds_text(late_by)} LATE"
    return f"{planned}, woke on time (+{seconds_text(max(late_by, 0.0))})"


def _short(value: Any) -> str:
    try:
        return short_time(datetime.fromisoformat(str(value))) or "-"
    except ValueError:
        return str(value)
