"""``ChildWorkflowHandle``: follow a fire-and-forget child run.

Example:
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> h = ChildWorkflowHandle("child_ship_1", "run_2", "ship", "run_1",
    ...                         InMemoryStorageBackend())
    >>> h
    ChildWorkflowHandle(child_id='child_ship_1', child_run_id='run_2', child_workflow_name='ship')
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pyworkflow.context.base import _current
from pyworkflow.core.exceptions import ChildWorkflowFailedError
from pyworkflow.engine.children import wait_for_child
from pyworkflow.engine.followups import final_run
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import RunStatus, WorkflowRun

_RUNNING = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUSPENDED)
_TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass
class ChildWorkflowHandle:
    """A started child run (of a continue-as-new chain: its latest run).

    Example:
        >>> import asyncio
        >>> from pyworkflow import get_workflow_result, start, start_child_workflow, workflow
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> @workflow(name="doctest_echo")
        ... async def echo(x: str) -> str:
        ...     return x
        >>> @workflow(name="doctest_fire")
        ... async def fire() -> str:
        ...     handle = await start_child_workflow(echo, "hi", wait_for_completion=False)
        ...     return await handle.result(timeout=5)
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(fire, durable=True, storage=store)
        ...     # the parent waits durably (suspended) until the child has finished
        ...     return await get_workflow_result(run_id, storage=store, wait=True, timeout=5)
        >>> asyncio.run(main())
        'hi'
    """

    child_id: str
    child_run_id: str
    child_workflow_name: str
    parent_run_id: str
    _storage: StorageBackend = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"ChildWorkflowHandle(child_id={self.child_id!r}, "
            f"child_run_id={self.child_run_id!r}, "
            f"child_workflow_name={self.child_workflow_name!r})"
        )

    async def _run(self) -> WorkflowRun:
        run = await self._storage.get_run(self.child_run_id)
        if run is None:
            raise ValueError(f"Child workflow run {self.child_run_id} not found")
        return await final_run(self._storage, run)

    async def get_status(self) -> RunStatus:
        """The child's status (``ValueError`` when its run is not found)."""
        return (await self._run()).status

    async def is_running(self) -> bool:
        """True while the child is PENDING, RUNNING or SUSPENDED."""
        return await self.get_status() in _RUNNING

    async def is_terminal(self) -> bool:
        """True once the child is COMPLETED, FAILED or CANCELLED."""
        return await self.get_status() in _TERMINAL

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the child and return its result; ``ChildWorkflowFailedError`` if it
        failed or was cancelled, ``TimeoutError`` after ``timeout`` seconds.

        Inside the parent workflow the wait is durable: the parent suspends (holding
        no worker) until the child ends, and ``timeout`` does not apply."""
        act = getattr(_current.get(), "activation", None)
        if act is not None and act.run_id == self.parent_run_id:
            return await wait_for_child(act, self.child_id, self.child_workflow_name)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = 0.01
        while True:
            run = await self._run()
            if run.status is RunStatus.COMPLETED:
                return deserialize(run.result) if run.result is not None else None
            if run.status is RunStatus.FAILED:
                raise ChildWorkflowFailedError(
                    run.run_id, self.child_workflow_name, run.error or "failed", "Unknown"
                )
            if run.status is RunStatus.CANCELLED:
                raise ChildWorkflowFailedError(
                    run.run_id,
                    self.child_workflow_name,
                    "Child workflow was cancelled",
                    "CancellationError",
                )
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(
                    f"Child workflow {self.child_run_id} did not finish within {timeout}s "
                    f"(status: {run.status.value})"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def cancel(self, reason: str | None = None) -> bool:
        """Cancel the child (see ``cancel_workflow``)."""
        from pyworkflow.engine.executor import cancel_workflow  # executor sits above

        return await cancel_workflow(self.child_run_id, reason=reason, storage=self._storage)
