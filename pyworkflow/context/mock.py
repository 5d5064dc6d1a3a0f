"""``MockContext``: unit-test a workflow without storage, timers or a runtime.

Make a ``MockContext`` current (``with`` or ``async with``) and call the workflow
function directly. Every durable call is recorded so the test can assert on it:

* ``ctx.run(func, ...)`` returns ``mock_results[name]`` when present, else runs ``func``;
* an ``@step`` runs its real function, with its in-process retries (``mock_results``
  does not apply to it), and is recorded like ``ctx.run``;
* ``sleep()`` is recorded and, with ``skip_sleeps=True`` (the default), returns at once;
* ``hook()`` returns ``mock_hooks[name]``, else ``{"hook": name, "mock": True}``;
* ``wait_for_event()`` returns ``mock_events[name]``, else ``{"event": name, "mock": True}``.

Example:
    >>> import asyncio
    >>> from pyworkflow.context import MockContext, get_context
    >>> from pyworkflow.primitives.sleep import sleep
    >>> async def fetch_user(user_id):
    ...     raise AssertionError("not called: the test mocks it")
    >>> async def onboarding(user_id):
    ...     ctx = get_context()
    ...     user = await ctx.run(fetch_user, user_id)
    ...     await sleep("1d")
    ...     approval = await ctx.hook("approval", timeout="24h")
    ...     return user["email"], approval["ok"]
    >>> async def test_onboarding():
    ...     ctx = MockContext(mock_results={"fetch_user": {"email": "a@b.c"}},
    ...                       mock_hooks={"approval": {"ok": True}})
    ...     with ctx:
    ...         result = await onboarding("u1")
    ...     ctx.assert_step_called("fetch_user", times=1)
    ...     ctx.assert_slept(total_seconds=86400)
    ...     return result, ctx.hook_names, ctx.hooks[0]["timeout"]
    >>> asyncio.run(test_onboarding())
    (('a@b.c', True), ['approval'], 86400)
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pyworkflow.context.base import WorkflowContext
from pyworkflow.core.exceptions import CancellationError
from pyworkflow.engine.steps import StepCall, run_step_transient
from pyworkflow.utils.duration import parse_duration, parse_duration_seconds

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["MockContext"]


class MockContext(WorkflowContext):
    """A transient context that records durable calls and returns canned results.

    Example:
        >>> ctx = MockContext(run_id="r1", mock_events={"paid": {"amount": 5}})
        >>> import asyncio
        >>> asyncio.run(ctx.wait_for_event("paid")), asyncio.run(ctx.wait_for_event("x"))
        ({'amount': 5}, {'event': 'x', 'mock': True})
        >>> ctx.events
        [{'name': 'paid', 'timeout': None}, {'name': 'x', 'timeout': None}]
    """

    is_durable = False

    def __init__(
        self,
        run_id: str = "test_run",
        workflow_name: str = "test_workflow",
        skip_sleeps: bool = True,
        mock_results: dict[str, Any] | None = None,
        mock_events: dict[str, Any] | None = None,
        mock_hooks: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(run_id, workflow_name)
        self.skip_sleeps = skip_sleeps
        # The caller's dicts are kept (not copied) so a test may add canned results
        # after building the context.
        self.mock_results: dict[str, Any] = mock_results if mock_results is not None else {}
        self.mock_events: dict[str, Any] = mock_events if mock_events is not None else {}
        self.mock_hooks: dict[str, Any] = mock_hooks if mock_hooks is not None else {}
        self.steps: list[dict[str, Any]] = []
        self.sleeps: list[float] = []
        self.events: list[dict[str, Any]] = []
        self.hooks: list[dict[str, Any]] = []
        self._hook_counter = 0
        # Plain attributes: shield() and users' tests read and write them directly.
        self._cancellation_requested = False
        self._cancellation_reason: str | None = None
        self._cancellation_blocked = False

    # ------------------------------------------------------------------ tracking views

    @property
    def step_count(self) -> int:
        """How many steps ran (``ctx.run`` calls and ``@step`` calls)."""
        return len(self.steps)

    @property
    def step_names(self) -> list[str]:
        """Names of the steps that ran, in call order."""
        return [entry["name"] for entry in self.steps]

    @property
    def sleep_count(self) -> int:
        """How many sleeps were requested."""
        return len(self.sleeps)

    @property
    def total_sleep_seconds(self) -> float:
        """Sum of every requested sleep, in seconds."""
        return float(sum(self.sleeps))

    @property
    def hook_count(self) -> int:
        """How many hooks were created."""
        return len(self.hooks)

    @property
    def hook_names(self) -> list[str]:
        """Names of the hooks created, in call order."""
        return [entry["name"] for entry in self.hooks]

    # ------------------------------------------------------------------ durable calls

    async def run(
        self, func: Callable[..., Any], *args: Any, name: str | None = None, **kwargs: Any
    ) -> Any:
        """Record the step; return ``mock_results[name]`` if given, else call ``func``.

        Example:
            >>> import asyncio
            >>> ctx = MockContext(mock_results={"double": 99})
            >>> asyncio.run(ctx.run(lambda x: x * 2, 21, name="double"))
            99
            >>> asyncio.run(ctx.run(lambda x: x * 2, 21, name="twice"))
            42
        """
        self.check_cancellation()
        step_name: str = name if name else str(getattr(func, "__name__", "step"))
        mocked = step_name in self.mock_results
        self._record_step(step_name, args, kwargs, mocked=mocked)
        if mocked:
            return self.mock_results[step_name]
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def execute_step(self, call: StepCall) -> Any:
        """Record an ``@step`` call, then run the real function with its retries."""
        self._record_step(call.name, call.args, call.kwargs, mocked=False)
        return await run_step_transient(call)

    def _record_step(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, mocked: bool
    ) -> None:
        self.steps.append({"name": name, "args": args, "kwargs": dict(kwargs), "mocked": mocked})

    async def sleep(self, seconds: float | str | timedelta, name: str | None = None) -> None:
        """Record the sleep; wait for real only when ``skip_sleeps`` is False.

        Example:
            >>> import asyncio
            >>> ctx = MockContext()
            >>> asyncio.run(ctx.sleep("1m30s")); ctx.sleeps, ctx.total_sleep_seconds
            ([90.0], 90.0)
        """
        self.check_cancellation()
        duration = parse_duration_seconds(seconds)
        self.sleeps.append(duration)
        if not self.skip_sleeps:
            await asyncio.sleep(duration)

    async def hook(
        self,
        name: str,
        timeout: int | float | str | None = None,
        on_created: Callable[[str], Awaitable[None]] | None = None,
        payload_schema: type[BaseModel] | None = None,
    ) -> Any:
        """Record the hook, hand its token to ``on_created`` and return the mock payload.

        The token is ``"{run_id}:hook_{name}_{n}"`` (n counts this context's hooks from
        1); a string ``timeout`` such as ``"24h"`` is recorded in seconds. The payload
        is returned as given: ``payload_schema`` is not applied.

        Example:
            >>> import asyncio
            >>> ctx = MockContext(run_id="r1", mock_hooks={"approve": {"ok": True}})
            >>> asyncio.run(ctx.hook("approve", timeout="1h"))
            {'ok': True}
            >>> ctx.hooks
            [{'name': 'approve', 'token': 'r1:hook_approve_1', 'timeout': 3600}]
        """
        self.check_cancellation()
        self._hook_counter += 1
        token = f"{self.run_id}:hook_{name}_{self._hook_counter}"
        seconds = parse_duration(timeout) if isinstance(timeout, str) else timeout
        self.hooks.append({"name": name, "token": token, "timeout": seconds})
        if on_created is not None:
            await on_created(token)
        if name in self.mock_hooks:
            return self.mock_hooks[name]
        return {"hook": name, "mock": True}

    async def wait_for_event(self, name: str, timeout: int | None = None) -> Any:
        """Record the wait; return ``mock_events[name]``, else a mock payload."""
        self.check_cancellation()
        self.events.append({"name": name, "timeout": timeout})
        if name in self.mock_events:
            return self.mock_events[name]
        return {"event": name, "mock": True}

    # ------------------------------------------------------------------ cancellation

    @property
    def cancellation_blocked(self) -> bool:
        """True inside ``shield()``."""
        return self._cancellation_blocked

    @property
    def cancellation_reason(self) -> str | None:
        """Why cancellation was requested."""
        return self._cancellation_reason

    def is_cancellation_requested(self) -> bool:
        """Whether cancellation was requested."""
        return self._cancellation_requested

    def request_cancellation(self, reason: str | None = None) -> None:
        """Flag this context as cancelled, as ``cancel_workflow`` would."""
        self._cancellation_requested = True
        self._cancellation_reason = reason

    def check_cancellation(self) -> None:
        """Raise ``CancellationError("Workflow was cancelled")`` unless shielded.

        Example:
            >>> ctx = MockContext()
            >>> ctx.request_cancellation("user asked")
            >>> try:
            ...     ctx.check_cancellation()
            ... except CancellationError as err:
            ...     print(err, "/", err.reason)
            Workflow was cancelled / user asked
        """
        if self._cancellation_requested and not self._cancellation_blocked:
            raise CancellationError(
                message="Workflow was cancelled", reason=self._cancellation_reason
            )

    # ------------------------------------------------------------------ test helpers

    def reset(self) -> None:
        """Forget every recorded call and restart hook numbering.

        The mock dicts, ``skip_sleeps`` and the cancellation state are kept: they are
        configuration, not tracking.
        """
        self.steps.clear()
        self.sleeps.clear()
        self.events.clear()
        self.hooks.clear()
        self._hook_counter = 0

    def assert_step_called(self, name: str, times: int | None = None) -> None:
        """Assert the step ran (at all, or exactly ``times`` times).

        Example:
            >>> import asyncio
            >>> ctx = MockContext(mock_results={"charge": "ok"})
            >>> asyncio.run(ctx.run(print, name="charge"))
            'ok'
            >>> ctx.assert_step_called("charge", times=1)
        """
        calls = self.step_names.count(name)
        if times is None:
            if calls == 0:
                raise AssertionError(
                    f"Step {name!r} was not called; steps called: {self.step_names}"
                )
        elif calls != times:
            raise AssertionError(
                f"Step {name!r} was called {calls} time(s), expected {times}; "
                f"steps called: {self.step_names}"
            )

    def assert_slept(self, total_seconds: float | None = None) -> None:
        """Assert the workflow slept (at all, or for ``total_seconds`` in total).

        Example:
            >>> import asyncio
            >>> ctx = MockContext()
            >>> asyncio.run(ctx.sleep(30))
            >>> ctx.assert_slept(total_seconds=30)
        """
        if total_seconds is None:
            if not self.sleeps:
                raise AssertionError("Expected the workflow to sleep, but it never did")
        elif not math.isclose(self.total_sleep_seconds, total_seconds, abs_tol=1e-9):
            raise AssertionError(
                f"Expected {total_seconds}s of sleep in total, got "
                f"{self.total_sleep_seconds}s over {self.sleep_count} sleep(s): {self.sleeps}"
            )

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> MockContext:
        # Same behaviour as the base class; overridden so ``with MockContext() as ctx``
        # gives the type checker a MockContext.
        super().__enter__()
        return self

    async def __aenter__(self) -> MockContext:
        return self.__enter__()

    def __repr__(self) -> str:
        return (
            f"MockContext(run_id={self.run_id!r}, steps={self.step_count}, "
            f"sleeps={self.sleep_count}, hooks={self.hook_count})"
        )
