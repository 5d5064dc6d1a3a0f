"""``sleep()``: pause a workflow for any length of time at zero cost.

In a durable run the sleep is recorded with a durable timer and the run suspends:
no task, coroutine or worker is held while it sleeps. Fractions of a second are
kept and a sleep never ends early. Outside a workflow it is ``asyncio.sleep``.

Example:
    >>> from pyworkflow import sleep, workflow
    >>> @workflow
    ... async def reminder(user: str) -> str:
    ...     await sleep("1h30m")     # also 90, 0.5, timedelta(...), a future datetime
    ...     return f"reminded {user}"
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pyworkflow.context.base import _current
from pyworkflow.context.local import LocalContext
from pyworkflow.utils.duration import parse_duration_seconds


def sleep_seconds(duration: str | int | float | timedelta | datetime) -> float:
    """Validate a sleep duration and return it in seconds (fractions kept).

    Example:
        >>> sleep_seconds("1m30s"), sleep_seconds(0.25)
        (90.0, 0.25)
    """
    if isinstance(duration, datetime):
        target = _aware(duration)
        if target <= datetime.now(UTC):
            raise ValueError(
                f"Cannot sleep until past time {duration.isoformat()}: pass a datetime in "
                "the future, or a duration such as '5m'."
            )
    return parse_duration_seconds(duration)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def sleep(
    duration: str | int | float | timedelta | datetime, name: str | None = None
) -> None:
    """Pause the workflow for ``duration`` ("30s", "1h30m", seconds, timedelta or a
    future datetime). Bad input raises ``ValueError`` before anything is recorded.

    In a durable run a ``datetime`` is kept as an absolute deadline, so replays after
    that moment find the sleep recorded and due instead of "in the past".

    Example:
        >>> import asyncio
        >>> asyncio.run(sleep(0.01))  # outside a workflow: asyncio.sleep
    """
    ctx = _current.get()
    if isinstance(ctx, LocalContext) and ctx.activation is not None:
        if isinstance(duration, datetime):
            until = _aware(duration)
            remaining = (until - datetime.now(UTC)).total_seconds()
            await ctx.sleep(max(0.0, remaining), name, until=until)
        else:
            await ctx.sleep(parse_duration_seconds(duration), name)
        return
    seconds = sleep_seconds(duration)
    if ctx is None:
        await asyncio.sleep(seconds)
    elif isinstance(ctx, LocalContext):
        await ctx.sleep(seconds, name)
    else:
        await ctx.sleep(seconds)
