"""The runtime interface: how a run's commands are carried out.

Example:
    >>> from pyworkflow.runtime import get_runtime
    >>> get_runtime("local").name
    'local'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyworkflow.storage.base import StorageBackend


class Runtime(ABC):
    """Executes workflow runs. Subclasses: ``LocalRuntime`` (in-process), Celery.

    Example:
        >>> from pyworkflow.runtime import get_runtime
        >>> rt = get_runtime("local")
        >>> isinstance(rt, Runtime), rt.supports_durable, rt.supports_transient
        (True, True, True)
    """

    supports_durable: bool = True
    supports_transient: bool = True

    @property
    @abstractmethod
    def name(self) -> str:
        """The name this runtime is registered under."""

    @abstractmethod
    async def start_workflow(
        self,
        workflow_func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run_id: str,
        workflow_name: str,
        storage: StorageBackend | None,
        durable: bool,
        idempotency_key: str | None = None,
        max_duration: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Start a new run; returns its id."""

    @abstractmethod
    async def resume_workflow(self, run_id: str, storage: StorageBackend) -> Any:
        """Advance a suspended run."""

    @abstractmethod
    async def schedule_wake(
        self, run_id: str, wake_time: datetime, storage: StorageBackend
    ) -> None:
        """Arrange for the run to be resumed at ``wake_time``."""

    async def schedule_resume(self, run_id: str, storage: StorageBackend) -> None:  # noqa: B027
        """Arrange for the run to be resumed soon (default: nothing)."""

    async def start_child_workflow(
        self,
        workflow_func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        child_run_id: str,
        workflow_name: str,
        storage: StorageBackend,
        parent_run_id: str,
        child_id: str,
        wait_for_completion: bool,
    ) -> None:
        """Upstream's hook for starting a child run; unused here.

        Children are started by the engine (``pyworkflow.start_child_workflow`` inside a
        workflow), which records the start in the parent's log before the child run
        exists, so that a crash in between cannot lose or duplicate the child.
        """
        raise NotImplementedError(
            "Start child workflows with pyworkflow.start_child_workflow() inside a workflow; "
            f"the {self.name} runtime does not start them on its own"
        )
