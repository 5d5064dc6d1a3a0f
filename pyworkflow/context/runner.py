"""Run a workflow function once inside a context and say how it ended.

Example:
    >>> import asyncio
    >>> from pyworkflow.context.local import LocalContext
    >>> async def wf(x):
    ...     return x * 2
    >>> asyncio.run(run_workflow_function(LocalContext(durable=False), wf, (21,), {}))
    Completed(result=42)
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pyworkflow.context.base import WorkflowContext, reset_context, set_context
from pyworkflow.core.exceptions import (
    CancellationError,
    ContinueAsNewSignal,
    SuspensionSignal,
    WorkflowTimeoutError,
)
from pyworkflow.engine.activation import (
    ActivationAborted,
    ActivationClosed,
    StorageUnavailable,
)
from pyworkflow.engine.outcome import (
    Aborted,
    Cancelled,
    Completed,
    ContinuedAsNew,
    Failed,
    Interrupted,
    Outcome,
    Suspended,
)


async def _call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_workflow_function(
    ctx: WorkflowContext,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    deadline: datetime | None = None,
    max_duration: str | None = None,
) -> Outcome:
    """Call ``func`` with ``ctx`` current; map its ending to an :data:`Outcome`.

    ``deadline`` enforces ``max_duration``: past it the run fails with
    ``WorkflowTimeoutError``, and a run still executing at the deadline is stopped.
    In-flight inline steps are drained before returning.
    """
    token = set_context(ctx)
    try:
        if deadline is None:
            return Completed(await _call(func, args, kwargs))
        remaining = (deadline - datetime.now(UTC)).total_seconds()
        if remaining <= 0:
            return Failed(WorkflowTimeoutError(ctx.run_id, max_duration))
        try:
            async with asyncio.timeout(remaining) as scope:
                return Completed(await _call(func, args, kwargs))
        except TimeoutError:
            if not scope.expired():
                raise
            return Failed(WorkflowTimeoutError(ctx.run_id, max_duration))
    except SuspensionSignal as signal:
        return Suspended(signal.reason, signal.data.get("resume_at"), dict(signal.data))
    except ContinueAsNewSignal as signal:
        return ContinuedAsNew(signal.workflow_args, signal.workflow_kwargs)
    except (ActivationAborted, ActivationClosed) as signal:
        return Aborted(str(signal))
    except StorageUnavailable as signal:
        return Interrupted(signal.error)
    except CancellationError as error:
        return Cancelled(error)
    except Exception as error:
        return Failed(error, "".join(traceback.format_exception(error)))
    finally:
        reset_context(token)
        activation = getattr(ctx, "activation", None)
        if activation is not None:
            await activation.drain()
