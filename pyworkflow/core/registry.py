"""The registry of workflows and steps, filled in by the ``@workflow`` and ``@step`` decorators.

Workflows and steps are looked up by name (a Celery worker or ``resume()`` only has the
name stored in the run) and by function (``start(my_workflow)`` passes the decorated
wrapper, tests sometimes pass the undecorated function). Both lookups are O(1).

Example:
    >>> from pyworkflow.core.registry import WorkflowRegistry
    >>> registry = WorkflowRegistry()
    >>> async def greet(name: str) -> str:
    ...     return f"hello {name}"
    >>> registry.register_workflow("greet", greet, greet).name
    'greet'
    >>> registry.get_workflow_name(greet)
    'greet'
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

#: What ``max_duration`` and ``timeout`` may hold: a duration string, seconds or a timedelta.
DurationLike = str | int | float | timedelta


@dataclass
class WorkflowMetadata:
    """Everything the engine needs to know about one registered workflow.

    ``description`` defaults to the stripped docstring of ``original_func``. The last
    three fields are the decorator's options (``None`` means "use the configuration").

    Example:
        >>> async def order(order_id: str) -> None:
        ...     '''Process one order.'''
        >>> WorkflowMetadata("order", order, order).description
        'Process one order.'
    """

    name: str
    func: Callable[..., Any]
    original_func: Callable[..., Any]
    max_duration: DurationLike | None = None
    tags: list[str] = field(default_factory=list)
    description: str | None = None
    context_class: type[Any] | None = None
    durable: bool | None = None
    recover_on_worker_loss: bool | None = None
    max_recovery_attempts: int | None = None

    def __post_init__(self) -> None:
        # Upstream accepts ``tags=None`` and turns it into an empty list.
        if self.tags is None:
            self.tags = []
        if self.description is None:
            doc = getattr(self.original_func, "__doc__", None)
            self.description = doc.strip() if doc else None


@dataclass
class StepMetadata:
    """Everything the engine needs to know about one registered step.

    ``retry_delay`` is kept as ``str(retry_delay)`` for compatibility with upstream;
    the value as given to the decorator (an int, a list, ...) is in ``retry_delay_value``.

    Example:
        >>> async def charge() -> None: ...
        >>> meta = StepMetadata("charge", charge, charge, retry_delay=10)
        >>> meta.retry_delay, meta.retry_delay_value
        ('10', 10)
    """

    name: str
    func: Callable[..., Any]
    original_func: Callable[..., Any]
    max_retries: int = 3
    retry_delay: str = "exponential"
    timeout: DurationLike | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    retry_delay_value: object = "exponential"

    def __post_init__(self) -> None:
        original: object = self.retry_delay
        # Only the stringified field was given: remember what it was before stringifying.
        if self.retry_delay_value == "exponential" and original != "exponential":
            self.retry_delay_value = original
        self.retry_delay = str(original)
        if self.metadata is None:
            self.metadata = {}


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Tell whether ``a`` and ``b`` are the same function, or one definition executed twice.

    ``importlib.reload`` (autoreloaders, notebooks) re-runs a module and creates new
    function objects for the same source; that must not count as a name clash.
    Functions defined inside other functions are excluded: two closures made by one
    factory share their source line yet are different workflows.
    """
    if a is b:
        return True
    qualname = getattr(a, "__qualname__", None)
    if qualname is None or "<locals>" in qualname:
        return False
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if code_a is None or code_b is None:
        return False
    return (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and qualname == getattr(b, "__qualname__", None)
        and code_a.co_filename == code_b.co_filename
        and code_a.co_firstlineno == code_b.co_firstlineno
    )


_Meta = TypeVar("_Meta", bound="WorkflowMetadata | StepMetadata")


class _Table(Generic[_Meta]):
    """Metadata by name, plus an index from function object (wrapper or original) to name."""

    def __init__(self, kind: str, by_name: dict[str, _Meta]) -> None:
        self.kind = kind
        self.by_name = by_name
        # func -> (name, original function it was registered with). Keeping the original
        # lets a lookup detect an entry made stale by a direct ``by_name`` mutation.
        self.by_func: dict[Callable[..., Any], tuple[str, Callable[..., Any]]] = {}

    def add(self, meta: _Meta) -> _Meta:
        existing = self.by_name.get(meta.name)
        if existing is not None and not _same_definition(
            existing.original_func, meta.original_func
        ):
            raise ValueError(
                f"{self.kind} name '{meta.name}' is already registered with different "
                f"function {_describe(existing.original_func)}; give one of them another "
                f"name, e.g. @{self.kind.lower()}(name='...')"
            )
        self.by_name[meta.name] = meta
        for func in (meta.func, meta.original_func):
            # An unhashable callable object cannot be indexed; it is found by scanning.
            with contextlib.suppress(TypeError):
                self.by_func[func] = (meta.name, meta.original_func)
        return meta

    def find_by_func(self, func: Callable[..., Any]) -> _Meta | None:
        try:
            entry = self.by_func.get(func)
        except TypeError:
            return self._scan(func)
        if entry is None:
            return None
        name, original = entry
        meta = self.by_name.get(name)
        # A wrapper from before a re-registration of the same definition still resolves.
        if meta is not None and _same_definition(meta.original_func, original):
            return meta
        return None

    def _scan(self, func: Callable[..., Any]) -> _Meta | None:
        for meta in self.by_name.values():
            if meta.func is func or meta.original_func is func:
                return meta
        return None


def _describe(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", "?")
    return f"{module}.{getattr(func, '__qualname__', repr(func))}"


class WorkflowRegistry:
    """Thread-safe registry of :class:`WorkflowMetadata` and :class:`StepMetadata`.

    Registering a name again with the same function updates its metadata (a module
    imported or reloaded twice); with a different function it raises ``ValueError``.

    Example:
        >>> registry = WorkflowRegistry()
        >>> async def ship() -> None: ...
        >>> _ = registry.register_step("ship", ship, ship, retry_delay=5)
        >>> registry.get_step("ship").retry_delay
        '5'
        >>> registry.get_step_by_func(ship).name
        'ship'
    """

    def __init__(self) -> None:
        self._workflows: dict[str, WorkflowMetadata] = {}
        self._steps: dict[str, StepMetadata] = {}
        self._lock = threading.RLock()
        self._workflow_table = _Table("Workflow", self._workflows)
        self._step_table = _Table("Step", self._steps)

    def register_workflow(
        self,
        name: str,
        func: Callable[..., Any],
        original_func: Callable[..., Any],
        max_duration: DurationLike | None = None,
        tags: list[str] | None = None,
        context_class: type[Any] | None = None,
        *,
        durable: bool | None = None,
        recover_on_worker_loss: bool | None = None,
        max_recovery_attempts: int | None = None,
    ) -> WorkflowMetadata:
        """Register or update a workflow, e.g. ``registry.register_workflow("wf", w, wf)``."""
        meta = WorkflowMetadata(
            name=name,
            func=func,
            original_func=original_func,
            max_duration=max_duration,
            tags=list(tags) if tags else [],
            context_class=context_class,
            durable=durable,
            recover_on_worker_loss=recover_on_worker_loss,
            max_recovery_attempts=max_recovery_attempts,
        )
        with self._lock:
            return self._workflow_table.add(meta)

    def get_workflow(self, name: str) -> WorkflowMetadata | None:
        """Return the workflow named ``name`` or None, e.g. ``registry.get_workflow("wf")``."""
        return self._workflows.get(name)

    def get_workflow_by_func(self, func: Callable[..., Any]) -> WorkflowMetadata | None:
        """Return the workflow of a wrapper or original: ``registry.get_workflow_by_func(wf)``."""
        with self._lock:
            return self._workflow_table.find_by_func(func)

    def get_workflow_name(self, func: Callable[..., Any]) -> str | None:
        """Return the name ``func`` is registered under, e.g. ``registry.get_workflow_name(wf)``."""
        meta = self.get_workflow_by_func(func)
        return meta.name if meta is not None else None

    def list_workflows(self) -> dict[str, WorkflowMetadata]:
        """Return a copy of the workflows by name, e.g. ``sorted(registry.list_workflows())``."""
        with self._lock:
            return dict(self._workflows)

    def register_step(
        self,
        name: str,
        func: Callable[..., Any],
        original_func: Callable[..., Any],
        max_retries: int = 3,
        retry_delay: object = "exponential",
        timeout: DurationLike | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> StepMetadata:
        """Register or update a step, e.g. ``registry.register_step("st", w, st, 5, "10s")``."""
        meta = StepMetadata(
            name=name,
            func=func,
            original_func=original_func,
            max_retries=max_retries,
            retry_delay=str(retry_delay),
            timeout=timeout,
            metadata=dict(metadata) if metadata else {},
            retry_delay_value=retry_delay,
        )
        with self._lock:
            return self._step_table.add(meta)

    def get_step(self, name: str) -> StepMetadata | None:
        """Return the step named ``name`` or None, e.g. ``registry.get_step("st")``."""
        return self._steps.get(name)

    def get_step_by_func(self, func: Callable[..., Any]) -> StepMetadata | None:
        """Return the step of a wrapper or original, e.g. ``registry.get_step_by_func(st)``."""
        with self._lock:
            return self._step_table.find_by_func(func)

    def get_step_name(self, func: Callable[..., Any]) -> str | None:
        """Return the name step ``func`` is registered as, e.g. ``registry.get_step_name(st)``."""
        meta = self.get_step_by_func(func)
        return meta.name if meta is not None else None

    def list_steps(self) -> dict[str, StepMetadata]:
        """Return a copy of the steps by name, e.g. ``sorted(registry.list_steps())``."""
        with self._lock:
            return dict(self._steps)

    def clear(self) -> None:
        """Forget every workflow and step, e.g. ``registry.clear()`` between tests."""
        with self._lock:
            self._workflows.clear()
            self._steps.clear()
            self._workflow_table.by_func.clear()
            self._step_table.by_func.clear()


#: The process-wide registry the decorators write to.
_registry = WorkflowRegistry()


def register_workflow(
    name: str,
    func: Callable[..., Any],
    original_func: Callable[..., Any],
    max_duration: DurationLike | None = None,
    tags: list[str] | None = None,
    context_class: type[Any] | None = None,
    *,
    durable: bool | None = None,
    recover_on_worker_loss: bool | None = None,
    max_recovery_attempts: int | None = None,
) -> WorkflowMetadata:
    """Register a workflow globally, e.g. ``register_workflow("order", wrapper, order)``."""
    return _registry.register_workflow(
        name,
        func,
        original_func,
        max_duration,
        tags,
        context_class,
        durable=durable,
        recover_on_worker_loss=recover_on_worker_loss,
        max_recovery_attempts=max_recovery_attempts,
    )


def get_workflow(name: str) -> WorkflowMetadata | None:
    """Return the global workflow ``name`` or None, e.g. ``get_workflow("order")``.

    Example:
        >>> from pyworkflow import workflow
        >>> @workflow(name="doctest_get_workflow")
        ... async def order() -> None: ...
        >>> get_workflow("doctest_get_workflow").name, get_workflow("doctest_nope")
        ('doctest_get_workflow', None)
    """
    return _registry.get_workflow(name)


def get_workflow_by_func(func: Callable[..., Any]) -> WorkflowMetadata | None:
    """Return the global workflow of a wrapper or original, e.g. ``get_workflow_by_func(order)``."""
    return _registry.get_workflow_by_func(func)


def get_workflow_name(func: Callable[..., Any]) -> str | None:
    """Return a workflow function's registered name, e.g. ``get_workflow_name(order)``."""
    return _registry.get_workflow_name(func)


def list_workflows() -> dict[str, WorkflowMetadata]:
    """Return a copy of the global workflows by name, e.g. ``sorted(list_workflows())``.

    Example:
        >>> from pyworkflow import workflow
        >>> @workflow(name="doctest_list_workflows")
        ... async def order() -> None: ...
        >>> "doctest_list_workflows" in list_workflows()
        True
    """
    return _registry.list_workflows()


def register_step(
    name: str,
    func: Callable[..., Any],
    original_func: Callable[..., Any],
    max_retries: int = 3,
    retry_delay: object = "exponential",
    timeout: DurationLike | None = None,
    metadata: dict[str, Any] | None = None,
) -> StepMetadata:
    """Register a step globally, e.g. ``register_step("charge", wrapper, charge, 5, "10s")``."""
    return _registry.register_step(
        name, func, original_func, max_retries, retry_delay, timeout, metadata
    )


def get_step(name: str) -> StepMetadata | None:
    """Return the global step ``name`` or None, e.g. ``get_step("charge")``.

    Example:
        >>> from pyworkflow import step
        >>> @step(name="doctest_get_step", max_retries=5)
        ... async def charge() -> None: ...
        >>> get_step("doctest_get_step").max_retries, get_step("doctest_nope")
        (5, None)
    """
    return _registry.get_step(name)


def get_step_by_func(func: Callable[..., Any]) -> StepMetadata | None:
    """Return the global step of a wrapper or original, e.g. ``get_step_by_func(charge)``."""
    return _registry.get_step_by_func(func)


def get_step_name(func: Callable[..., Any]) -> str | None:
    """Return a step function's registered name, e.g. ``get_step_name(charge)``."""
    return _registry.get_step_name(func)


def list_steps() -> dict[str, StepMetadata]:
    """Return a copy of the global steps by name, e.g. ``sorted(list_steps())``.

    Example:
        >>> from pyworkflow import step
        >>> @step(name="doctest_list_steps")
        ... async def charge() -> None: ...
        >>> "doctest_list_steps" in list_steps()
        True
    """
    return _registry.list_steps()


def clear_registry() -> None:
    """Forget every global workflow and step (for tests), e.g. ``clear_registry()``."""
    _registry.clear()
