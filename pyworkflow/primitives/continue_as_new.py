"""``continue_as_new()``: end this run and start a fresh one with new arguments.

Long-lived loops (polling, subscriptions) keep their history bounded this way: the
run ends CONTINUED_AS_NEW and the next run of the chain starts with an empty log
and ``continued_from_run_id`` pointing back. ``get_workflow_chain(run_id)`` reads
the whole chain from any member.

Example:
    >>> from pyworkflow import continue_as_new, step, workflow
    >>> @workflow
    ... async def poller(cursor: int) -> int:
    ...     if cursor >= 1000:
    ...         return cursor
    ...     continue_as_new(cursor + 100)   # never returns
"""

from __future__ import annotations

from typing import Any, NoReturn

from pyworkflow.context.base import _current
from pyworkflow.core.exceptions import ContinueAsNewSignal


def continue_as_new(*args: Any, **kwargs: Any) -> NoReturn:
    """End the current run; the next run of the chain starts with these arguments.

    Example:
        >>> continue_as_new(1)
        Traceback (most recent call last):
        ...
        RuntimeError: continue_as_new() must be called within a workflow context
    """
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("continue_as_new() must be called within a workflow context")
    if not args and not kwargs:
        raise ValueError(
            "continue_as_new() requires at least one argument: pass the next run's "
            "arguments (e.g. the cursor to continue from)."
        )
    ctx.check_cancellation()
    raise ContinueAsNewSignal(workflow_args=args, workflow_kwargs=kwargs)
