"""Printing command results: tables on a terminal, stable JSON for scripts, plain ids.

``--output json`` prints ``json.dumps(data, indent=2, default=str)`` and nothing else on
stdout, so ``pyworkflow --output json runs list | jq`` always works; ``plain`` prints one
value per line; ``table`` uses rich (colour only when stdout is a terminal).

Example:
    >>> emit(CLIState(output="json"), {"run_id": "run_1"}, table=lambda c: None, plain=["run_1"])
    {
      "run_id": "run_1"
    }
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pyworkflow.cli.state import CLIState

#: Colours of statuses in tables (runs, steps, hooks, schedules).
STATUS_STYLES = {
    "completed": "green",
    "received": "green",
    "active": "green",
    "running": "cyan",
    "pending": "yellow",
    "suspended": "yellow",
    "paused": "yellow",
    "interrupted": "magenta",
    "failed": "red",
    "expired": "red",
    "cancelled": "bright_black",
    "disposed": "bright_black",
    "deleted": "bright_black",
    "continued_as_new": "blue",
}


def console() -> Console:
    """A console on the current stdout (CliRunner swaps it, so build one per use)."""
    return Console(file=sys.stdout, soft_wrap=False)


def emit(
    state: CLIState,
    data: Any,
    *,
    table: Callable[[Console], None],
    plain: Iterable[str],
) -> None:
    """Print ``data`` as JSON, ``plain`` lines, or call ``table`` with a rich console."""
    if state.output == "json":
        click.echo(to_json(data))
    elif state.output == "plain":
        for line in plain:
            click.echo(line)
    else:
        table(console())


def to_json(data: Any) -> str:
    """The JSON text every ``--output json`` prints.

    Example:
        >>> to_json({"n": 1, "at": None})
        '{\\n  "n": 1,\\n  "at": null\\n}'
    """
    return json.dumps(data, indent=2, default=str)


def iso(value: datetime | None) -> str | None:
    """An ISO 8601 text for JSON output, ``None`` kept.

    Example:
        >>> from datetime import datetime, UTC
        >>> iso(datetime(2026, 1, 2, tzinfo=UTC))
        '2026-01-02T00:00:00+00:00'
    """
    return value.isoformat() if value is not None else None


def status_text(status: str) -> Text:
    """A status coloured by :data:`STATUS_STYLES`.

    Example:
        >>> status_text("failed").style
        'red'
    """
    return Text(status, style=STATUS_STYLES.get(status.lower(), ""))


def list_table(
    out: Console,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
    empty: str = "Nothing found.",
) -> None:
    """Print ``rows`` as a table of ``(key, heading)`` columns; a ``status`` column is coloured."""
    if not rows:
        out.print(empty)
        return
    table = Table(title=title, header_style="bold")
    for key, heading in columns:
        # Ids and tokens are copied into other commands: never break them across lines.
        whole = key.endswith("_id") or key == "token"
        table.add_column(heading, overflow="fold", no_wrap=whole)
    for row in rows:
        table.add_row(*(_cell(key, row.get(key)) for key, _ in columns))
    out.print(table)


def fields_table(out: Console, data: Mapping[str, Any], *, title: str | None = None) -> None:
    """Print ``data`` as a two-column key/value table; nested values as compact JSON."""
    table = Table(title=title, show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in data.items():
        table.add_row(key, _cell(key, value))
    out.print(table)


def _cell(key: str, value: Any) -> Text | str:
    if value is None:
        return Text("-", style="bright_black")
    if key == "status" or key.endswith("_status"):
        return status_text(str(value))
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)
