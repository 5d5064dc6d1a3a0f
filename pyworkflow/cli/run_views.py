"""How ``pyworkflow runs`` shows a run: summaries, decoded fields, short times and durations.

Stored inputs and results are JSON text written by the engine. They are decoded with
``deserialize(..., allow_pickle=False)``, so nothing is ever unpickled: a value that only
pickle could rebuild is shown as its raw stored text.

Example:
    >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
    >>> run = WorkflowRun(run_id="run_1", workflow_name="order", status=RunStatus.PENDING)
    >>> summary(run)["status"], decode('{"__type__": "tuple", "value": [1, 2]}')
    ('pending', [1, 2])
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from pyworkflow.cli.output import iso
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.schemas import WorkflowRun

#: The keys of every ``runs list`` / ``children`` / ``chain`` item (upstream's).
SUMMARY_KEYS = (
    "run_id",
    "workflow_name",
    "status",
    "created_at",
    "started_at",
    "completed_at",
    "duration",
)

#: The columns of run tables: ``(key, heading)`` for :func:`pyworkflow.cli.output.list_table`.
RUN_COLUMNS = [
    ("run_id", "Run ID"),
    ("workflow_name", "Workflow"),
    ("status", "Status"),
    ("created", "Created (UTC)"),
    ("took", "Duration"),
]


def duration(run: WorkflowRun) -> float | None:
    """Seconds from start to completion, rounded to milliseconds; None while unfinished.

    Example:
        >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
        >>> duration(WorkflowRun(run_id="r", workflow_name="w", status=RunStatus.RUNNING))
    """
    if run.started_at is None or run.completed_at is None:
        return None
    return round((run.completed_at - run.started_at).total_seconds(), 3)


def summary(run: WorkflowRun) -> dict[str, Any]:
    """The JSON item of a run in ``runs list`` (keys :data:`SUMMARY_KEYS`).

    Example:
        >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
        >>> run = WorkflowRun(run_id="r", workflow_name="w", status=RunStatus.FAILED)
        >>> tuple(summary(run)) == SUMMARY_KEYS
        True
    """
    return {
        "run_id": run.run_id,
        "workflow_name": run.workflow_name,
        "status": run.status.value,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "duration": duration(run),
    }


def table_row(run: WorkflowRun, **extra: Any) -> dict[str, Any]:
    """A run summary plus the short ``created``/``took`` cells of :data:`RUN_COLUMNS`.

    Example:
        >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
        >>> table_row(WorkflowRun(run_id="r", workflow_name="w", status=RunStatus.FAILED))["took"]
    """
    took = duration(run)
    return summary(run) | {
        "created": short_time(run.created_at),
        "took": seconds_text(took) if took is not None else None,
        **extra,
    }


def details(run: WorkflowRun) -> dict[str, Any]:
    """The JSON of ``runs status``: the summary plus decoded inputs, result, error, context.

    Example:
        >>> from pyworkflow.storage.schemas import RunStatus, WorkflowRun
        >>> run = WorkflowRun(run_id="r", workflow_name="w", status=RunStatus.COMPLETED,
        ...                   input_args="[21]", result="42")
        >>> details(run)["input_args"], details(run)["result"]
        ([21], 42)
    """
    return summary(run) | {
        "input_args": decode(run.input_args),
        "input_kwargs": decode(run.input_kwargs),
        "result": decode(run.result),
        "error": run.error,
        "context": jsonable(run.context),
    }


def decode(text: str | None) -> Any:
    """Decode stored JSON text for display, never unpickling; undecodable text is kept.

    Example:
        >>> decode('{"__type__": "cloudpickle", "value": "gASV"}')
        '{"__type__": "cloudpickle", "value": "gASV"}'
        >>> decode(None) is None, decode("not json")
        (True, 'not json')
    """
    if text is None:
        return None
    try:
        return jsonable(deserialize(text, allow_pickle=False))
    except Exception:
        # A pickled value (refused above) or text that is not JSON: show what is stored.
        return text


def jsonable(value: Any) -> Any:
    """``value`` with models, dataclasses, dates, sets and the like as plain JSON values.

    Example:
        >>> from datetime import timedelta
        >>> jsonable({"t": (1, 2), "d": timedelta(seconds=90), "s": {3}})
        {'t': [1, 2], 'd': 90.0, 's': [3]}
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return jsonable(dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return str(value) if isinstance(value, Decimal) else repr(value)


def short_time(value: datetime | None) -> str | None:
    """A compact UTC time for tables, milliseconds kept.

    Example:
        >>> from datetime import UTC, datetime
        >>> short_time(datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC))
        '2026-01-02 03:04:05.678'
    """
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if value is not None else None


def seconds_text(seconds: float) -> str:
    """A duration people read at a glance.

    Example:
        >>> [seconds_text(s) for s in (0.0042, 1.25, 5, 75, 3725)]
        ['4ms', '1.25s', '5s', '1m15s', '1h02m']
    """
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}".rstrip("0").rstrip(".") + "s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
