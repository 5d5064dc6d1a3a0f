"""``@step``: a unit of work whose result is recorded once.

Inside a durable run a step's result is committed before the workflow moves past
it; on replay the recorded result is returned without running the body again.
Failures are retried per ``max_retries``/``retry_delay`` with the delay kept as a
durable timer; ``FatalError`` is never retried; ``timeout`` bounds each attempt.

Example:
    >>> from pyworkflow import step
    >>> @step(max_retries=5, retry_delay=[1, 5, 30], timeout="30s")
    ... async def charge(order_id: str) -> dict:
    ...     return {"order_id": order_id, "charged": True}
    >>> charge.__step_max_retries__, charge.__step_timeout__
    (5, '30s')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from pyworkflow.context.base import _current
from pyworkflow.core.registry import register_step
from pyworkflow.engine.ids import step_base_id
from pyworkflow.engine.steps import StepCall, invoke
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.utils.duration import parse_duration_seconds
from pyworkflow.utils.retry import validate_retry_delay

F = TypeVar("F", bound=Callable[..., Any])


def _generate_step_id(step_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Upstream's step id: ``step_<name>_<sha256(name, args, kwargs)[:16]>``."""
    return step_base_id(step_name, serialize_args(*args), serialize_kwargs(**kwargs))


def _timeout_seconds(timeout: str | int | float | None) -> float | None:
    if timeout is None:
        return None
    seconds = parse_duration_seconds(timeout)
    if seconds <= 0:
        raise ValueError(f"Step timeout must be positive, got {timeout!r}")
    return seconds


def _validate(max_retries: int, retry_delay: Any) -> None:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
    validate_retry_delay(retry_delay)


def _decorate(
    func: F,
    name: str | None,
    max_retries: int,
    retry_delay: Any,
    timeout: str | int | float | None,
    metadata: dict[str, Any] | None,
) -> F:
    _validate(max_retries, retry_delay)
    timeout_s = _timeout_seconds(timeout)
    step_name = name or func.__name__

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = StepCall(step_name, func, args, kwargs, max_retries, retry_delay, timeout_s)
        ctx = _current.get()
        if ctx is None:
            return await invoke(call)
        if not ctx.is_durable:
            # Durable contexts check at the call's place in the log (see Activation).
            ctx.check_cancellation()
        return await ctx.execute_step(call)

    attrs = wrapper.__dict__
    attrs["__step__"] = True
    attrs["__step_name__"] = step_name
    attrs["__step_max_retries__"] = max_retries
    attrs["__step_retry_delay__"] = retry_delay
    attrs["__step_timeout__"] = timeout
    attrs["__step_metadata__"] = dict(metadata or {})
    register_step(
        step_name,
        wrapper,
        func,
        max_retries=max_retries,
        retry_delay=retry_delay,
        timeout=timeout,
        metadata=dict(metadata or {}),
    )
    return wrapper  # type: ignore[return-value]


@overload
def step(func: F, /) -> F: ...


@overload
def step(
    *,
    name: str | None = None,
    max_retries: int = 3,
    retry_delay: Any = "exponential",
    timeout: str | int | float | None = None,
    metadata: dict[str, Any] | None = None,
) -> Callable[[F], F]: ...


def step(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int = 3,
    retry_delay: Any = "exponential",
    timeout: str | int | float | None = None,
    metadata: dict[str, Any] | None = None,
) -> F | Callable[[F], F]:
    """Register a step (bare ``@step`` or ``@step(...)``).

    ``retry_delay``: "exponential" (1, 2, 4, ... s, capped at 300), "fixed" (5 s), a
    duration ("10s", "1m30s"), seconds, or a list of those per attempt. Bad values
    raise ``ValueError`` here, at decoration time.

    Example:
        >>> import asyncio
        >>> @step(name="doctest_step_square", retry_delay="10s")
        ... async def square(x: int) -> int:
        ...     return x * x
        >>> asyncio.run(square(3))  # outside a workflow a step just runs
        9
    """

    def decorator(f: F) -> F:
        return _decorate(f, name, max_retries, retry_delay, timeout, metadata)

    if func is not None:
        return decorator(func)
    return decorator
