"""A step call and the primitives to run one attempt of it.

Example:
    >>> import asyncio
    >>> async def add(a, b):
    ...     return a + b
    >>> asyncio.run(invoke(StepCall("add", add, (1, 2))))
    3
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from pyworkflow.core.exceptions import FatalError, RetryableError, StepTimeoutError
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.utils.retry import compute_retry_delay


@dataclass
class StepCall:
    """One call of a step: what to run and its retry/timeout policy."""

    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 3
    retry_delay: Any = "exponential"
    timeout: float | None = None


async def invoke(call: StepCall) -> Any:
    """Run the step body once, honouring its timeout. Sync functions run in a thread."""
    if inspect.iscoroutinefunction(call.func):
        body = call.func(*call.args, **call.kwargs)
    else:
        body = asyncio.to_thread(call.func, *call.args, **call.kwargs)
    if call.timeout is None:
        result = await body
    else:
        try:
            async with asyncio.timeout(call.timeout):
                result = await body
        except TimeoutError as exc:
            if isinstance(exc, StepTimeoutError):
                raise
            raise StepTimeoutError(call.name, call.timeout) from exc
    if inspect.isawaitable(result):
        result = await result
    return result


def retry_delay_for(call: StepCall, error: BaseException, attempt: int) -> float:
    """Seconds to wait before the attempt after ``attempt`` (1-based) failed."""
    if isinstance(error, RetryableError) and error.retry_after is not None:
        try:
            requested = error.get_retry_delay()
        except (TypeError, ValueError) as bad:
            # A malformed retry_after must not turn a retryable failure into a crash of
            # the failure handler: fall back to the step's own retry_delay.
            logger.warning("Step {}: ignoring retry_after: {}", call.name, bad)
            requested = None
        if requested is not None:
            return max(0.0, float(requested))
    return compute_retry_delay(call.retry_delay, attempt - 1)


def exhausted_error(call: StepCall, error: BaseException, attempts: int) -> BaseException:
    """What the workflow sees when a step ran out of attempts."""
    if isinstance(error, RetryableError):
        return error
    return RetryableError(f"Step {call.name} failed after {attempts} attempts: {error}")


def replay_failure(data: dict[str, Any]) -> BaseException:
    """Rebuild the exception a recorded final failure raised."""
    encoded = data.get("exception")
    if encoded:
        try:
            value = deserialize(encoded, allow_pickle=False)
        except Exception:
            value = None
        if isinstance(value, BaseException):
            return value
    return FatalError(str(data.get("error", "step failed")))
