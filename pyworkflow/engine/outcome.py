"""How an activation ends: exactly one of these outcomes.

Example:
    >>> Completed(42).result
    42
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyworkflow.core.exceptions import CancellationError


@dataclass
class Completed:
    """The workflow function returned ``result``."""

    result: Any


@dataclass
class Failed:
    """The workflow function raised ``error`` (or the engine failed the run)."""

    error: BaseException
    traceback: str | None = None


@dataclass
class Suspended:
    """The run waits (sleep, retry delay, hook, dispatched step, child)."""

    reason: str
    resume_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Cancelled:
    """The run was cancelled (the workflow let ``CancellationError`` escape)."""

    error: CancellationError


@dataclass
class ContinuedAsNew:
    """The run ends and a new run continues with these arguments."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Aborted:
    """Another writer ended the run while this activation ran; nothing to record."""

    reason: str


@dataclass
class Interrupted:
    """The storage failed mid-activation: nothing more was recorded, the run is
    resumable, and ``error`` (the storage's exception) goes to the caller."""

    error: BaseException


Outcome = Completed | Failed | Suspended | Cancelled | ContinuedAsNew | Aborted | Interrupted
