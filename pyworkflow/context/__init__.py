"""The workflow context and the step context.

``WorkflowContext`` is what ``@step``, ``sleep()``, ``hook()`` and the other
primitives talk to while a workflow runs; ``LocalContext`` runs workflows in this
process and ``MockContext`` records calls for unit tests. ``StepContext`` carries
typed data from a workflow to its steps.

Example:
    >>> import asyncio
    >>> from pyworkflow.context import MockContext, get_context
    >>> async def wf() -> int:
    ...     return await get_context().run(lambda: 1, name="one")
    >>> async def test() -> tuple[int, list[str]]:
    ...     async with MockContext(mock_results={"one": 7}) as ctx:
    ...         return await wf(), ctx.step_names
    >>> asyncio.run(test())
    (7, ['one'])
"""

# base first: local, mock and step_context all build on it, and base itself imports
# nothing from this package, so there is no import cycle.
from pyworkflow.context.base import (
    WorkflowContext,
    get_context,
    has_context,
    reset_context,
    set_context,
)
from pyworkflow.context.local import LocalContext
from pyworkflow.context.mock import MockContext
from pyworkflow.context.step_context import (
    StepContext,
    get_step_context,
    get_step_context_class,
    has_step_context,
    set_step_context,
)

__all__ = [
    "LocalContext",
    "MockContext",
    "StepContext",
    "WorkflowContext",
    "get_context",
    "get_step_context",
    "get_step_context_class",
    "has_context",
    "has_step_context",
    "reset_context",
    "set_context",
    "set_step_context",
]
