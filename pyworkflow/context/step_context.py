"""``StepContext``: typed, immutable data a workflow shares with its steps.

Subclass :class:`StepContext` with the fields you need, set it in the workflow with
``await set_step_context(...)`` and read it anywhere (workflow or step) with
:func:`get_step_context`. In a durable run every change is recorded as a
``context.updated`` event and stored on the run (``storage.update_run_context``), so
a resumed run, or a step running on another worker, sees the same data.

Inside a step running on a distributed worker the context is read-only: steps may
read it but only the workflow may change it.

Example:
    >>> import asyncio
    >>> class OrderContext(StepContext):
    ...     workspace_id: str = ""
    ...     user_id: str | None = None
    >>> async def workflow_body() -> str | None:
    ...     await set_step_context(OrderContext(workspace_id="ws1"))
    ...     ctx = get_step_context()
    ...     await set_step_context(ctx.with_updates(user_id="u7"))
    ...     return get_step_context().user_id
    >>> asyncio.run(workflow_body())
    'u7'
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from pyworkflow.context.base import _current
from pyworkflow.context.local import LocalContext
from pyworkflow.engine.events import create_context_updated_event

__all__ = [
    "StepContext",
    "get_step_context",
    "get_step_context_class",
    "has_step_context",
    "set_step_context",
]


class StepContext(BaseModel):
    """Base class for step contexts: frozen, no undeclared fields, compared by value.

    Example:
        >>> class Ctx(StepContext):
        ...     tenant: str = "default"
        ...     retries: int = 0
        >>> a = Ctx(tenant="acme")
        >>> b = a.with_updates(retries=2)
        >>> a.retries, b.retries, b == Ctx.from_dict(b.to_dict())
        (0, 2, True)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def with_updates(self, **kwargs: Any) -> Self:
        """A validated copy with some fields changed (the original is untouched).

        Unlike ``model_copy(update=...)`` the result is validated, so an unknown field
        or a wrong type raises ``ValidationError`` here rather than later.

        Example:
            >>> class Ctx(StepContext):
            ...     user: str = ""
            >>> Ctx().with_updates(user="bob").user
            'bob'
        """
        return self.model_validate({**dict(self), **kwargs})

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (``model_dump()``).

        Example:
            >>> class Ctx(StepContext):
            ...     user: str = "ann"
            >>> Ctx().to_dict()
            {'user': 'ann'}
        """
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build and validate from a dict (``model_validate``); extra keys are refused.

        Example:
            >>> class Ctx(StepContext):
            ...     user: str = ""
            >>> Ctx.from_dict({"user": "ann"})
            Ctx(user='ann')
        """
        return cls.model_validate(data)


_step_context: ContextVar[StepContext | None] = ContextVar("pyworkflow_step_context", default=None)
_step_context_readonly: ContextVar[bool] = ContextVar(
    "pyworkflow_step_context_readonly", default=False
)
_step_context_class: ContextVar[type[StepContext] | None] = ContextVar(
    "pyworkflow_step_context_class", default=None
)


def get_step_context() -> StepContext:
    """The current step context; ``RuntimeError`` when none was set.

    Example:
        >>> has_step_context()
        False
        >>> try:
        ...     get_step_context()
        ... except RuntimeError as err:
        ...     print(str(err).split(".")[0])
        No step context available
    """
    ctx = _step_context.get()
    if ctx is None:
        raise RuntimeError(
            "No step context available. Set one in the workflow with "
            "'await set_step_context(MyContext(...))', or declare the workflow with "
            "@workflow(context_class=MyContext) so it is restored on resume."
        )
    return ctx


def has_step_context() -> bool:
    """Whether a step context is set.

    Example:
        >>> has_step_context()
        False
    """
    return _step_context.get() is not None


def get_step_context_class() -> type[StepContext] | None:
    """The ``context_class`` of the running workflow, or None.

    Example:
        >>> get_step_context_class() is None
        True
    """
    return _step_context_class.get()


async def set_step_context(ctx: StepContext) -> None:
    """Make ``ctx`` the step context; in a durable run also record and store it.

    Raises ``RuntimeError`` inside a read-only step and ``TypeError`` for anything
    that is not a :class:`StepContext`.

    Example:
        >>> import asyncio
        >>> class Ctx(StepContext):
        ...     user: str = ""
        >>> async def body() -> str:
        ...     await set_step_context(Ctx(user="ann"))
        ...     return get_step_context().user
        >>> asyncio.run(body())
        'ann'
    """
    if _step_context_readonly.get():
        raise RuntimeError(
            "Cannot modify step context within a step. The step context is read-only "
            "while a step runs; call set_step_context() in the workflow instead."
        )
    if not isinstance(ctx, StepContext):
        raise TypeError(f"Expected StepContext instance, got {type(ctx).__name__}")
    _step_context.set(ctx)
    await _persist(ctx)


async def _persist(ctx: StepContext) -> None:
    """Record ``context.updated`` and store the context on a durable run."""
    workflow_ctx = _current.get()
    if not isinstance(workflow_ctx, LocalContext):
        return
    activation = workflow_ctx.activation
    if activation is None:
        return
    # JSON mode: the event and the run row are stored as JSON by every backend, and
    # from_dict() turns the strings back into datetimes, UUIDs, etc.
    data = ctx.model_dump(mode="json")
    # A resumed run re-executes its set_step_context() calls; skipping an unchanged
    # context keeps each resume from appending the same event again.
    if activation.state.context_data != data:
        await activation.commit([create_context_updated_event(workflow_ctx.run_id, data)])
    # Written even when unchanged: a crash between the commit above and this call
    # would otherwise leave the run row stale forever.
    await activation.storage.update_run_context(workflow_ctx.run_id, data)


# --------------------------------------------------------------------------- internals
# Token-based setters for the engine (and users' tests): each returns the token that
# restores the previous value, so nested scopes unwind correctly.


def _set_step_context_internal(ctx: StepContext | None) -> Token[StepContext | None]:
    """Set the step context with no checks and no recording."""
    return _step_context.set(ctx)


def _reset_step_context(token: Token[StepContext | None]) -> None:
    """Undo :func:`_set_step_context_internal`."""
    _step_context.reset(token)


def _set_step_context_readonly(readonly: bool) -> Token[bool]:
    """Turn read-only mode on or off (a distributed step worker turns it on)."""
    return _step_context_readonly.set(readonly)


def _reset_step_context_readonly(token: Token[bool]) -> None:
    """Undo :func:`_set_step_context_readonly`."""
    _step_context_readonly.reset(token)


def _is_step_context_readonly() -> bool:
    """Whether read-only mode is on."""
    return _step_context_readonly.get()


def _set_step_context_class(cls: type[StepContext] | None) -> Token[type[StepContext] | None]:
    """Declare the running workflow's ``context_class``."""
    return _step_context_class.set(cls)


def _reset_step_context_class(token: Token[type[StepContext] | None]) -> None:
    """Undo :func:`_set_step_context_class`."""
    _step_context_class.reset(token)
