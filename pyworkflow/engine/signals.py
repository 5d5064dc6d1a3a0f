"""Signals an activation raises to its driver, and the event-count limits.

They derive from ``BaseException`` so that a workflow's ``except Exception:`` cannot
swallow them.

Example:
    >>> EventLimits().hard
    50000
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EventLimits:
    """Soft/hard caps on a run's event count (``PyWorkflowConfig`` event_* fields)."""

    soft: int = 10_000
    hard: int = 50_000
    warning_interval: int = 100


class ActivationClosed(BaseException):
    """A durable call arrived after the activation's outcome was decided.

    Raised in leftover tasks (e.g. the other branches of an ``asyncio.gather`` whose
    sibling suspended) so that they stop at their next durable call."""


class ActivationAborted(BaseException):
    """Another writer ended the run (it reached a terminal event) meanwhile."""


class StorageUnavailable(BaseException):
    """The storage failed (connection lost, server restarting) during an activation.

    A ``BaseException`` so workflow code cannot mistake it for its own failure: the
    activation stops, nothing more is recorded, and the run stays resumable. The
    storage's own exception is ``__cause__`` (and ``error``).
    """

    def __init__(self, run_id: str, error: BaseException) -> None:
        super().__init__(f"Storage failed while advancing run {run_id}: {error}")
        self.error = error
