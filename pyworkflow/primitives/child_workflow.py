"""``start_child_workflow()``: run another workflow as a child of this one.

An awaited child returns its result to the parent (which suspends meanwhile and
holds nothing); a failed child raises ``ChildWorkflowFailedError`` in the parent. A
fire-and-forget child (``wait_for_completion=False``) gives a
:class:`~pyworkflow.primitives.child_handle.ChildWorkflowHandle`. Children nest at
most ``MAX_NESTING_DEPTH`` (3) levels below a root run; when a parent ends, its
unfinished children are cancelled.

Example:
    >>> from pyworkflow import start_child_workflow, step, workflow
    >>> @workflow
    ... async def ship(order_id: str) -> str:
    ...     return f"shipped {order_id}"
    >>> @workflow
    ... async def order(order_id: str) -> str:
    ...     return await start_child_workflow(ship, order_id)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyworkflow.context.base import _current
from pyworkflow.core.registry import get_workflow_by_func
from pyworkflow.engine.children import MAX_NESTING_DEPTH, ChildRef, ChildSpec
from pyworkflow.primitives.child_handle import ChildWorkflowHandle
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs

__all__ = ["MAX_NESTING_DEPTH", "start_child_workflow"]


def _spec(workflow_func: Callable[..., Any], args: Any, kwargs: Any, wait: bool) -> ChildSpec:
    # The runtime layer knows how a workflow's settings turn into a run's.
    from pyworkflow.runtime.activator import max_duration_text, recovery_settings

    meta = get_workflow_by_func(workflow_func)
    if meta is None:
        name = getattr(workflow_func, "__name__", repr(workflow_func))
        raise ValueError(
            f"Function {name} is not registered as a workflow. Decorate it with @workflow "
            "and import its module before starting it as a child."
        )
    recover, attempts = recovery_settings(meta)
    return ChildSpec(
        meta.name,
        serialize_args(*args),
        serialize_kwargs(**kwargs),
        wait,
        max_duration_text(meta),
        recover,
        attempts,
    )


async def start_child_workflow(
    workflow_func: Callable[..., Any],
    *args: Any,
    wait_for_completion: bool = True,
    **kwargs: Any,
) -> Any:
    """Start ``workflow_func(*args, **kwargs)`` as a child run of the current workflow.

    Returns the child's result when ``wait_for_completion`` (the default), else a
    :class:`ChildWorkflowHandle`. Raises ``ChildWorkflowFailedError`` if an awaited
    child fails or is cancelled, ``MaxNestingDepthError`` beyond depth 3, and
    ``RuntimeError`` outside a durable workflow.

    Example:
        >>> import asyncio
        >>> from pyworkflow import workflow, start, get_workflow_result
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_square")
        ... async def square(x: int) -> int:
        ...     return x * x
        >>> @workflow(name="doctest_sum_squares")
        ... async def sum_squares(n: int) -> int:
        ...     results = await asyncio.gather(
        ...         *(start_child_workflow(square, i) for i in range(n))
        ...     )
        ...     return sum(results)
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(sum_squares, 4, durable=True, storage=store)
        ...     return await get_workflow_result(run_id, storage=store)
        >>> asyncio.run(main())
        14
    """
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError(
            "start_child_workflow() must be called within a workflow context: call it "
            "from a function decorated with @workflow."
        )
    if not ctx.is_durable or ctx.storage is None:
        raise RuntimeError(
            "Child workflows need a durable parent with a storage: start the parent "
            "with durable=True."
        )
    spec = _spec(workflow_func, args, kwargs, wait_for_completion)
    start_child = getattr(ctx, "start_child", None)
    if start_child is None:
        raise RuntimeError(f"{type(ctx).__name__} cannot start child workflows")
    outcome = await start_child(spec)
    if isinstance(outcome, ChildRef):
        return ChildWorkflowHandle(
            outcome.child_id, outcome.child_run_id, outcome.name, outcome.parent_run_id, ctx.storage
        )
    return outcome
