"""The exception hierarchy users catch and raise.

Control-flow signals (:class:`SuspensionSignal`, :class:`ContinueAsNewSignal`) derive
from ``BaseException`` so that a user's ``except Exception:`` cannot swallow them: a
workflow that wraps ``await sleep("1h")`` in ``try/except Exception`` still suspends.

Example:
    >>> from pyworkflow import FatalError, RetryableError
    >>> RetryableError("rate limited", retry_after="30s").get_retry_delay_seconds()
    30
    >>> isinstance(FatalError("bad input"), Exception)
    True
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pyworkflow.utils.duration import parse_duration_seconds


class WorkflowError(Exception):
    """Base class of every error the engine raises on purpose.

    Example:
        >>> issubclass(FatalError, WorkflowError), str(WorkflowError("boom"))
        (True, 'boom')
    """


class FatalError(WorkflowError):
    """A failure that must not be retried.

    Example:
        >>> FatalError("card declined", code=402).metadata
        {'code': 402}
    """

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, Any] = dict(kwargs)


class EventLimitExceededError(FatalError):
    """A run's event log reached ``event_hard_limit``."""

    def __init__(self, run_id: str, event_count: int, limit: int) -> None:
        super().__init__(
            f"Workflow {run_id} exceeded maximum event limit: {event_count} >= {limit}",
            run_id=run_id,
            event_count=event_count,
            limit=limit,
        )
        self.run_id = run_id
        self.event_count = event_count
        self.limit = limit


class NondeterminismError(FatalError):
    """Replay found a different durable call than the one the log recorded.

    Raised when the workflow code changed (or depends on something non-deterministic)
    so that the call at a recorded position has another kind, name or arguments.

    Example:
        >>> str(NondeterminismError(2, "step 'charge'", "step 'ship'"))[:40]
        'Non-deterministic workflow: at position '
    """

    def __init__(self, position: int, recorded: str, current: str) -> None:
        super().__init__(
            f"Non-deterministic workflow: at position {position} the event log recorded "
            f"{recorded}, but the code now calls {current}. Workflow code must make the "
            "same durable calls in the same order on every replay; start a new run for "
            "changed code.",
            position=position,
            recorded=recorded,
            current=current,
        )
        self.position = position
        self.recorded = recorded
        self.current = current


class CancellationError(WorkflowError):
    """Raised inside a workflow (or step) whose run was cancelled.

    Example:
        >>> err = CancellationError(reason="user request")
        >>> str(err), err.reason
        ('Workflow was cancelled', 'user request')
    """

    def __init__(self, message: str = "Workflow was cancelled", reason: str | None = None):
        super().__init__(message)
        self.message = message
        self.reason = reason

    @classmethod
    def requested(cls, reason: str | None) -> CancellationError:
        """The error a cancelled run's next durable call (or check) raises.

        Example:
            >>> str(CancellationError.requested("user asked"))
            'Workflow was cancelled: user asked'
        """
        return cls(
            message=f"Workflow was cancelled: {reason or 'no reason provided'}", reason=reason
        )


class RetryableError(WorkflowError):
    """A failure worth retrying, optionally after a given delay.

    ``retry_after`` overrides the step's ``retry_delay`` for the next attempt.

    Example:
        >>> RetryableError("busy", retry_after=5).get_retry_delay_seconds()
        5
    """

    def __init__(
        self,
        message: str,
        retry_after: int | str | timedelta | datetime | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.metadata: dict[str, Any] = dict(kwargs)

    def get_retry_delay(self) -> float | None:
        """The requested delay in seconds, exact, or None when none was given.

        Accepts what every other duration accepts: seconds, "30s", "1m30s",
        a timedelta, or a datetime to wait until.

        Example:
            >>> RetryableError("busy", retry_after="1m30s").get_retry_delay()
            90.0
        """
        value = self.retry_after
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError(f"Invalid retry_after: {value!r}")
        try:
            return parse_duration_seconds(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"Invalid retry_after {value!r}: {error}") from error

    def get_retry_delay_seconds(self) -> int | None:
        """The requested delay in whole seconds (upstream's method), or None."""
        delay = self.get_retry_delay()
        return None if delay is None else int(delay)


class WorkflowNotFoundError(WorkflowError):
    """No run with that id exists in the storage.

    Example:
        >>> str(WorkflowNotFoundError("run_1"))
        'Workflow run not found: run_1'
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Workflow run not found: {run_id}")
        self.run_id = run_id


class WorkflowTimeoutError(WorkflowError):
    """A run exceeded its ``@workflow(max_duration=...)``.

    Example:
        >>> str(WorkflowTimeoutError("run_1", "1h"))
        'Workflow run run_1 exceeded its max_duration of 1h'
    """

    def __init__(self, run_id: str, max_duration: str | int | float | None) -> None:
        super().__init__(f"Workflow run {run_id} exceeded its max_duration of {max_duration}")
        self.run_id = run_id
        self.max_duration = max_duration


class StepTimeoutError(WorkflowError, TimeoutError):
    """One attempt of a step exceeded its ``@step(timeout=...)``; counts as retryable."""

    def __init__(self, step_name: str, timeout: float) -> None:
        super().__init__(f"Step {step_name} timed out after {timeout:g}s")
        self.step_name = step_name
        self.timeout = timeout


class StepNotFoundError(WorkflowError):
    """A step name is not in the registry."""

    def __init__(self, step_id: str) -> None:
        super().__init__(f"Step not found: {step_id}")
        self.step_id = step_id


class HookExpiredError(WorkflowError):
    """The hook's deadline passed before it was resumed.

    Example:
        >>> str(HookExpiredError("hook_1"))
        'Hook expired: hook_1'
    """

    def __init__(self, hook_id: str) -> None:
        super().__init__(f"Hook expired: {hook_id}")
        self.hook_id = hook_id


class InvalidTokenError(WorkflowError):
    """A hook token is malformed or does not match.

    Example:
        >>> str(InvalidTokenError("hook_1"))
        'Invalid token for hook: hook_1'
    """

    def __init__(self, hook_id: str) -> None:
        super().__init__(f"Invalid token for hook: {hook_id}")
        self.hook_id = hook_id


class HookNotFoundError(WorkflowError):
    """No hook exists for the given token.

    Example:
        >>> err = HookNotFoundError("tok_123")
        >>> str(err), err.token
        ('Hook not found for token: tok_123', 'tok_123')
    """

    def __init__(self, token: str) -> None:
        super().__init__(f"Hook not found for token: {token}")
        self.token = token


class HookAlreadyReceivedError(WorkflowError):
    """The hook was already resumed once.

    Example:
        >>> str(HookAlreadyReceivedError("hook_1"))
        'Hook already received: hook_1'
    """

    def __init__(self, hook_id: str) -> None:
        super().__init__(f"Hook already received: {hook_id}")
        self.hook_id = hook_id


class HookDisposedError(HookNotFoundError):
    """The hook no longer waits: its run ended, or its ``on_created`` callback failed.

    A ``HookNotFoundError`` for code that only knows that one.

    Example:
        >>> err = HookDisposedError("run_1:hook_a_1:x", "hook_a_1", "its run was cancelled")
        >>> str(err)
        'Hook hook_a_1 no longer accepts payloads: its run was cancelled'
    """

    def __init__(self, token: str, hook_id: str, why: str) -> None:
        super().__init__(token)
        self.args = (f"Hook {hook_id} no longer accepts payloads: {why}",)
        self.hook_id = hook_id


class HookValidationError(WorkflowError, ValueError):
    """A hook payload does not match the hook's model; nothing was recorded.

    ``errors`` lists the problems as text; ``validation_error`` is the validator's own
    error (pydantic's ``ValidationError`` when the model was available).

    Example:
        >>> err = HookValidationError("approval", None, None, ["approved: Field required"])
        >>> str(err).split(";")[0]
        "Payload for hook 'approval' is invalid (approved: Field required)"
    """

    def __init__(
        self,
        hook_name: str,
        schema: Any,
        validation_error: Any,
        errors: list[str] | None = None,
    ) -> None:
        self.hook_name = hook_name
        self.schema = schema
        self.validation_error = validation_error
        self.errors = list(errors or [])
        detail = "; ".join(self.errors) or str(validation_error)
        super().__init__(
            f"Payload for hook '{hook_name}' is invalid ({detail}); nothing was recorded "
            "and the run keeps waiting. Send a payload that matches the hook's schema."
        )


class WorkflowAlreadyRunningError(WorkflowError):
    """A run with the same idempotency key is still running.

    Example:
        >>> err = WorkflowAlreadyRunningError("run_1")
        >>> str(err), err.run_id
        ('Workflow already running: run_1', 'run_1')
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Workflow already running: {run_id}")
        self.run_id = run_id


class SerializationError(WorkflowError, TypeError):
    """A value cannot be encoded or decoded."""

    def __init__(self, message: str, data_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data_type = data_type


class ContextError(WorkflowError):
    """A workflow context is missing or misused."""


class ChildWorkflowError(WorkflowError):
    """Base class of child-workflow errors.

    Example:
        >>> issubclass(MaxNestingDepthError, ChildWorkflowError)
        True
    """


class ChildWorkflowFailedError(ChildWorkflowError):
    """An awaited child run failed or was cancelled.

    Example:
        >>> err = ChildWorkflowFailedError("run_2", "ship", "no stock", "ValueError")
        >>> str(err), err.error_type
        ("Child workflow 'ship' (run_2) failed: no stock", 'ValueError')
    """

    def __init__(
        self, child_run_id: str, child_workflow_name: str, error: str, error_type: str
    ) -> None:
        super().__init__(f"Child workflow '{child_workflow_name}' ({child_run_id}) failed: {error}")
        self.child_run_id = child_run_id
        self.child_workflow_name = child_workflow_name
        self.error = error
        self.error_type = error_type


class MaxNestingDepthError(ChildWorkflowError):
    """A workflow at the maximum depth tried to start a child.

    Example:
        >>> err = MaxNestingDepthError(3)
        >>> err.current_depth, err.max_depth
        (3, 3)
    """

    MAX_DEPTH = 3

    def __init__(self, current_depth: int) -> None:
        super().__init__(
            f"Maximum nesting depth of {self.MAX_DEPTH} exceeded. "
            f"Current depth: {current_depth}. Flatten the workflow tree or start the "
            "work as an independent run."
        )
        self.current_depth = current_depth
        self.max_depth = self.MAX_DEPTH


class SuspensionSignal(BaseException):
    """Internal: the run must suspend (sleep, hook, retry wait, dispatched step).

    A ``BaseException`` so user ``except Exception`` blocks cannot swallow it.

    Example:
        >>> sig = SuspensionSignal("sleep", sleep_id="sleep_1")
        >>> str(sig), sig.data, isinstance(sig, Exception)
        ('Workflow suspended: sleep', {'sleep_id': 'sleep_1'}, False)
    """

    def __init__(self, reason: str, **data: Any) -> None:
        super().__init__(f"Workflow suspended: {reason}")
        self.reason = reason
        self.data = data


class ContinueAsNewSignal(BaseException):
    """Internal: end this run and start a fresh one with new arguments."""

    def __init__(
        self,
        workflow_args: tuple[Any, ...] = (),
        workflow_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__("Workflow continuing as new execution")
        self.workflow_args = tuple(workflow_args)
        self.workflow_kwargs = workflow_kwargs if workflow_kwargs is not None else {}
