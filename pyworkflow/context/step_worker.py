"""The context a step body sees on a distributed step worker.

A step running on a Celery step worker is away from its workflow: it cannot call
``sleep()``, ``hook()`` or run steps durably, but it can ask whether the run was
cancelled (``get_context().check_cancellation()``), which the worker keeps up to
date while the step runs.

Example:
    >>> ctx = StepWorkerContext("run_1", "orders")
    >>> ctx.request_cancellation("user asked")
    >>> ctx.is_cancellation_requested()
    True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pyworkflow.context.base import WorkflowContext
from pyworkflow.core.exceptions import CancellationError

if TYPE_CHECKING:
    from pydantic import BaseModel


class StepWorkerContext(WorkflowContext):
    """What ``get_context()`` returns inside a step on a step worker.

    Example:
        >>> import asyncio
        >>> ctx = StepWorkerContext("run_1")
        >>> try:
        ...     asyncio.run(ctx.sleep(1))
        ... except RuntimeError as error:
        ...     print(str(error).split(":")[0])
        sleep() cannot be called inside a step
    """

    def __init__(self, run_id: str, workflow_name: str = "unknown") -> None:
        super().__init__(run_id, workflow_name)
        self.is_durable = False
        self._requested = False
        self._reason: str | None = None
        self._cancellation_blocked = False

    @staticmethod
    def _not_here(what: str) -> RuntimeError:
        return RuntimeError(
            f"{what}() cannot be called inside a step: call it in the workflow, between steps."
        )

    async def run(
        self, func: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """Not available in a step."""
        raise self._not_here("run")

    async def sleep(self, seconds: float) -> None:
        """Not available in a step."""
        raise self._not_here("sleep")

    async def hook(
        self,
        name: str,
        timeout: int | float | str | None = None,
        on_created: Callable[[str], Awaitable[None]] | None = None,
        payload_schema: type[BaseModel] | None = None,
    ) -> Any:
        """Not available in a step."""
        raise self._not_here("hook")

    @property
    def cancellation_blocked(self) -> bool:
        """True inside ``shield()``."""
        return self._cancellation_blocked

    def is_cancellation_requested(self) -> bool:
        """Whether the run was asked to cancel (as far as this worker has seen)."""
        return self._requested

    def request_cancellation(self, reason: str | None = None) -> None:
        """Note a cancellation request (called by the worker's poll)."""
        self._requested = True
        self._reason = reason

    def check_cancellation(self) -> None:
        """Raise ``CancellationError`` when the run was cancelled (and not shielded)."""
        if self._requested and not self._cancellation_blocked:
            reason = self._reason
            raise CancellationError.requested(reason)
