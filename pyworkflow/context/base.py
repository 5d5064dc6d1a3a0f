"""The workflow context: what durable calls talk to while a workflow runs.

One ``ContextVar`` holds the current context. ``@step``, ``sleep()`` and the other
primitives ask it to do their work; with no context they just run plainly.

Example:
    >>> from pyworkflow.context import MockContext, get_context, has_context
    >>> has_context()
    False
    >>> with MockContext() as ctx:
    ...     get_context() is ctx
    True
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loguru import logger

from pyworkflow.engine.steps import StepCall, run_step_transient

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pyworkflow.storage.base import StorageBackend

_current: ContextVar[WorkflowContext | None] = ContextVar("pyworkflow_context", default=None)


def get_context() -> WorkflowContext:
    """The current workflow context; ``RuntimeError`` outside a workflow.

    Example:
        >>> from pyworkflow.context.mock import MockContext
        >>> with MockContext() as ctx:
        ...     get_context() is ctx
        True
    """
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError(
            "No workflow context available. This function must run inside a workflow "
            "started with pyworkflow.start() (or inside a MockContext in tests)."
        )
    return ctx


def has_context() -> bool:
    """Whether a workflow context is active.

    Example:
        >>> from pyworkflow.context.mock import MockContext
        >>> with MockContext():
        ...     has_context()
        True
        >>> has_context()
        False
    """
    return _current.get() is not None


def set_context(ctx: WorkflowContext | None) -> Token[WorkflowContext | None]:
    """Make ``ctx`` current; returns the token for :func:`reset_context`.

    Example:
        >>> from pyworkflow.context.mock import MockContext
        >>> token = set_context(MockContext())
        >>> has_context()
        True
        >>> reset_context(token)
    """
    return _current.set(ctx)


def reset_context(token: Token[WorkflowContext | None]) -> None:
    """Restore the context that was current before :func:`set_context`.

    Example:
        >>> from pyworkflow.context.mock import MockContext
        >>> token = set_context(MockContext())
        >>> reset_context(token)
        >>> has_context()
        False
    """
    _current.reset(token)


class WorkflowContext(ABC):
    """Base class of workflow contexts (durable, transient and mock).

    Example:
        >>> from pyworkflow.context.local import LocalContext
        >>> ctx = LocalContext(run_id="run_1", workflow_name="order", durable=False)
        >>> isinstance(ctx, WorkflowContext), ctx.run_id, ctx.is_replaying
        (True, 'run_1', False)
    """

    is_durable: bool = False
    storage: StorageBackend | None = None

    def __init__(self, run_id: str = "unknown", workflow_name: str = "unknown") -> None:
        self._run_id = run_id
        self._workflow_name = workflow_name
        self._is_replaying = False
        self._runtime: str | None = None
        self._storage_config: dict[str, Any] | None = None
        self._tokens: list[Token[WorkflowContext | None]] = []

    @property
    def run_id(self) -> str:
        """The run this context belongs to."""
        return self._run_id

    @property
    def workflow_name(self) -> str:
        """The workflow's registered name."""
        return self._workflow_name

    @property
    def is_replaying(self) -> bool:
        """True while replaying recorded history."""
        return self._is_replaying

    @is_replaying.setter
    def is_replaying(self, value: bool) -> None:
        self._is_replaying = value

    @property
    def runtime(self) -> str | None:
        """The runtime name executing this run, if any."""
        return self._runtime

    @property
    def storage_config(self) -> dict[str, Any] | None:
        """The storage as a config dict (for crossing process boundaries)."""
        return self._storage_config

    # ------------------------------------------------------------------ abstract API

    @abstractmethod
    async def run(
        self, func: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """Run ``func`` as an explicit step."""

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Pause the workflow."""

    @abstractmethod
    async def hook(
        self,
        name: str,
        timeout: int | float | str | None = None,
        on_created: Callable[[str], Awaitable[None]] | None = None,
        payload_schema: type[BaseModel] | None = None,
    ) -> Any:
        """Wait for an outside event."""

    @abstractmethod
    def is_cancellation_requested(self) -> bool:
        """Whether someone asked to cancel the run."""

    @abstractmethod
    def request_cancellation(self, reason: str | None = None) -> None:
        """Ask the run to cancel."""

    @abstractmethod
    def check_cancellation(self) -> None:
        """Raise ``CancellationError`` if cancellation was requested (and not shielded)."""

    @property
    @abstractmethod
    def cancellation_blocked(self) -> bool:
        """True inside ``shield()``."""

    # ------------------------------------------------------------------ steps

    async def execute_step(self, call: StepCall) -> Any:
        """Run an ``@step`` call; the default is the transient in-process loop."""
        return await run_step_transient(call)

    def should_execute_step(self, step_id: str) -> bool:
        """Whether the step still has to run (no recorded result)."""
        return True

    def get_step_result(self, step_id: str) -> Any:
        """A recorded step result; ``KeyError`` when there is none."""
        raise KeyError(step_id)

    def cache_step_result(self, step_id: str, result: Any) -> None:  # noqa: B027
        """Remember a step result (no-op here)."""

    def get_retry_state(self, step_id: str) -> dict[str, Any] | None:
        """Retry bookkeeping for a step, if any."""
        return None

    def set_retry_state(  # noqa: B027
        self, step_id: str, attempt: int, resume_at: Any = None, max_retries: int = 3
    ) -> None:
        """Store retry bookkeeping (no-op here)."""

    def clear_retry_state(self, step_id: str) -> None:  # noqa: B027
        """Drop retry bookkeeping (no-op here)."""

    def has_step_failed(self, step_id: str) -> bool:
        """Whether the step failed for good."""
        return False

    def get_step_failure(self, step_id: str) -> dict[str, Any] | None:
        """The recorded final failure of a step, if any."""
        return None

    async def validate_event_limits(self) -> None:  # noqa: B027
        """Check the run's event limits (only durable contexts have any)."""

    # ------------------------------------------------------------------ children

    @property
    def pending_children(self) -> dict[str, Any]:
        """Children started and not finished."""
        return {}

    def has_child_result(self, child_id: str) -> bool:
        """Whether a child's outcome is known."""
        return False

    def get_child_result(self, child_id: str) -> dict[str, Any]:
        """A child's outcome; ``KeyError`` when unknown."""
        raise KeyError(child_id)

    # ------------------------------------------------------------------ helpers

    async def parallel(self, *coros: Awaitable[Any]) -> list[Any]:
        """Run awaitables concurrently (``asyncio.gather``)."""
        return list(await asyncio.gather(*coros))

    async def wait_for_event(self, name: str, timeout: int | None = None) -> Any:
        """Not supported here; use ``hook()``."""
        raise NotImplementedError("wait_for_event is not supported; use hook() instead")

    def log(self, message: str, level: str = "info", **kwargs: Any) -> None:
        """Log with the run bound."""
        logger.bind(run_id=self._run_id, workflow_name=self._workflow_name, **kwargs).log(
            level.upper(), message
        )

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> WorkflowContext:
        self._tokens.append(set_context(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reset_context(self._tokens.pop())

    async def __aenter__(self) -> WorkflowContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
