"""``@workflow``: declare a durable workflow.

Both ``@workflow`` and ``@workflow(...)`` register the function. Calling the
decorated function directly just runs it; ``await start(fn, ...)`` runs it as a
durable (or transient) run.

Example:
    >>> from pyworkflow import workflow
    >>> @workflow(name="doctest_greet", max_duration="1h")
    ... async def greet(name: str) -> str:
    ...     return f"hello {name}"
    >>> greet.__workflow_name__, greet.__workflow_max_duration__
    ('doctest_greet', '1h')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from pyworkflow.context.local import LocalContext
from pyworkflow.context.runner import run_workflow_function
from pyworkflow.core.exceptions import ContinueAsNewSignal, SuspensionSignal
from pyworkflow.core.registry import register_workflow
from pyworkflow.engine.events import Event
from pyworkflow.engine.finish import check_completion, terminal_event
from pyworkflow.engine.outcome import (
    Aborted,
    Cancelled,
    Completed,
    ContinuedAsNew,
    Failed,
    Interrupted,
    Suspended,
)
from pyworkflow.storage.base import StorageBackend
from pyworkflow.utils.duration import parse_duration_seconds

F = TypeVar("F", bound=Callable[..., Any])

MAX_TAGS = 3


def normalize_max_duration(value: str | int | float | None) -> str | None:
    """Validate ``max_duration`` now (a bad one fails at import) and store it as text."""
    if value is None:
        return None
    seconds = parse_duration_seconds(value)
    if seconds <= 0:
        raise ValueError(f"max_duration must be positive, got {value!r}")
    return value if isinstance(value, str) else f"{value}s"


def _decorate(
    func: F,
    name: str | None,
    durable: bool | None,
    max_duration: str | int | None,
    tags: list[str] | None,
    recover_on_worker_loss: bool | None,
    max_recovery_attempts: int | None,
    context_class: type[Any] | None,
) -> F:
    if tags is not None and len(tags) > MAX_TAGS:
        raise ValueError(f"A workflow can have at most {MAX_TAGS} tags, got {len(tags)}: {tags}")
    workflow_name = name or func.__name__
    max_duration_text = normalize_max_duration(max_duration)

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = func(*args, **kwargs)
        if hasattr(result, "__await__"):
            result = await result
        return result

    attrs = wrapper.__dict__
    attrs["__workflow__"] = True
    attrs["__workflow_name__"] = workflow_name
    attrs["__workflow_durable__"] = durable
    attrs["__workflow_max_duration__"] = max_duration_text
    attrs["__workflow_tags__"] = list(tags or [])
    attrs["__workflow_recover_on_worker_loss__"] = recover_on_worker_loss
    attrs["__workflow_max_recovery_attempts__"] = max_recovery_attempts
    attrs["__workflow_context_class__"] = context_class
    register_workflow(
        workflow_name,
        wrapper,
        func,
        max_duration=max_duration_text,
        tags=list(tags or []),
        context_class=context_class,
        durable=durable,
        recover_on_worker_loss=recover_on_worker_loss,
        max_recovery_attempts=max_recovery_attempts,
    )
    return wrapper  # type: ignore[return-value]


@overload
def workflow(func: F, /) -> F: ...


@overload
def workflow(
    *,
    name: str | None = None,
    durable: bool | None = None,
    max_duration: str | int | None = None,
    tags: list[str] | None = None,
    recover_on_worker_loss: bool | None = None,
    max_recovery_attempts: int | None = None,
    context_class: type[Any] | None = None,
) -> Callable[[F], F]: ...


def workflow(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    durable: bool | None = None,
    max_duration: str | int | None = None,
    tags: list[str] | None = None,
    recover_on_worker_loss: bool | None = None,
    max_recovery_attempts: int | None = None,
    context_class: type[Any] | None = None,
) -> F | Callable[[F], F]:
    """Register an ``async def`` as a workflow (bare ``@workflow`` or ``@workflow(...)``).

    ``max_duration`` ("1h", "2d12h", seconds) is enforced: a run still going at
    ``started_at + max_duration`` fails with ``WorkflowTimeoutError``. At most 3 tags.

    Example:
        >>> import asyncio
        >>> @workflow(name="doctest_workflow_hello", tags=["demo"])
        ... async def hello(name: str) -> str:
        ...     return f"hello {name}"
        >>> asyncio.run(hello("ada"))  # a direct call just runs it; start() records it
        'hello ada'
    """

    def decorator(f: F) -> F:
        return _decorate(
            f,
            name,
            durable,
            max_duration,
            tags,
            recover_on_worker_loss,
            max_recovery_attempts,
            context_class,
        )

    if func is not None:
        return decorator(func)
    return decorator


async def execute_workflow_with_context(
    workflow_func: Callable[..., Any],
    run_id: str,
    workflow_name: str,
    storage: StorageBackend | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    event_log: list[Event] | None = None,
    durable: bool = True,
    cancellation_requested: bool = False,
    runtime: str | None = None,
    storage_config: dict[str, Any] | None = None,
) -> Any:
    """Run one activation of ``workflow_func`` and record its terminal event.

    Upstream's low-level entry point, kept for users' code: it records
    ``workflow.completed`` / ``failed`` / ``cancelled`` when durable, re-raises the
    workflow's exception and suspension signals, and leaves the run's status to the
    caller. Runtimes use the engine's single-commit path instead.
    """
    ctx = LocalContext(run_id, workflow_name, storage, durable, event_log)
    ctx._runtime = runtime
    ctx._storage_config = storage_config
    if cancellation_requested:
        ctx.request_cancellation("Cancellation requested before execution")
    outcome = await run_workflow_function(ctx, workflow_func, args, kwargs)
    act = ctx.activation
    raw: str | None = None
    if act is not None and isinstance(outcome, Completed):
        outcome, raw = check_completion(act, outcome)
    if act is not None and isinstance(outcome, Completed | Failed | Cancelled):
        await act.commit([terminal_event(act, outcome, raw)])
    if isinstance(outcome, Completed):
        return outcome.result
    if isinstance(outcome, Suspended):
        raise SuspensionSignal(outcome.reason, **outcome.data)
    if isinstance(outcome, ContinuedAsNew):
        raise ContinueAsNewSignal(outcome.args, outcome.kwargs)
    if isinstance(outcome, Cancelled):
        raise outcome.error
    if isinstance(outcome, Failed):
        raise outcome.error
    if isinstance(outcome, Interrupted):
        raise outcome.error
    assert isinstance(outcome, Aborted)
    return None
