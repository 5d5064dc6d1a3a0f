"""Dispatch mode: a step call becomes a command for a remote step worker.

When an activation runs in dispatch mode (the Celery runtime), a step with no
recorded outcome is not executed in place. Its ``step.started`` is recorded with a
*watchdog* timer and a :class:`StepCommand` is queued; the run suspends. A step
worker runs the attempt and records its outcome (once, by the step's unique key),
then the run is resumed. If the outcome has not arrived when the watchdog fires (a
lost message, a step worker that died), the next activation dispatches the same
attempt again; a second outcome for it is refused by the storage.

Example:
    >>> cmd = StepCommand("run_1", "step_a_1", "a", "[1]", "{}", attempt=1, dispatch=1)
    >>> StepCommand.from_message(cmd.to_message()) == cmd
    True
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from pyworkflow.engine.step_call import StepCall
from pyworkflow.storage.schemas import Timer

#: How long a dispatched attempt may go without an outcome before it is sent again,
#: when the step has no ``timeout`` (with one: timeout + ``REDISPATCH_MARGIN_SECONDS``).
DEFAULT_REDISPATCH_SECONDS = float(os.environ.get("PYWORKFLOW_STEP_REDISPATCH_SECONDS", "300"))
REDISPATCH_MARGIN_SECONDS = 60.0
#: After a step worker records an outcome it sends a resume; should that message be
#: lost (a broker restart), this timer resumes the run anyway. Every dispatch-mode
#: activation that suspends clears it.
RESUME_GUARD_SECONDS = float(os.environ.get("PYWORKFLOW_RESUME_GUARD_SECONDS", "30"))


def resume_guard(run_id: str, now: datetime) -> Timer:
    """The run's resume-guard timer, due ``RESUME_GUARD_SECONDS`` from ``now``."""
    return Timer(run_id, "guard", "resume", now + timedelta(seconds=RESUME_GUARD_SECONDS))


@dataclass(frozen=True)
class StepCommand:
    """Run attempt ``attempt`` of step ``step_id`` of run ``run_id`` (JSON-safe)."""

    run_id: str
    step_id: str
    step_name: str
    args_json: str
    kwargs_json: str
    attempt: int = 1
    dispatch: int = 1

    def to_message(self) -> dict[str, Any]:
        """The command as a JSON-serializable dict (what crosses the broker)."""
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> StepCommand:
        """The inverse of :meth:`to_message`."""
        return cls(**{k: message[k] for k in cls.__dataclass_fields__})


def redispatch_at(call: StepCall, now: datetime) -> datetime:
    """When an attempt dispatched ``now`` counts as lost."""
    window = (
        call.timeout + REDISPATCH_MARGIN_SECONDS
        if call.timeout is not None
        else DEFAULT_REDISPATCH_SECONDS
    )
    return now + timedelta(seconds=window)
