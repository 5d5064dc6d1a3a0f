"""pyworkflow: durable, event-sourced workflows for Python.

Write plain ``async def`` workflows and steps; pyworkflow records every step in an
event log so runs survive crashes, sleep for days at no cost and retry durably.
Runs execute in-process on an embedded SQLite file by default.

Example:
    >>> import asyncio
    >>> from pyworkflow import workflow, step, start, get_workflow_result
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> @step
    ... async def add(a: int, b: int) -> int:
    ...     return a + b
    >>> @workflow(name="doctest_pkg")
    ... async def total(a: int, b: int) -> int:
    ...     return await add(a, b)
    >>> async def main():
    ...     store = InMemoryStorageBackend()
    ...     run_id = await start(total, 2, 3, durable=True, storage=store)
    ...     return await get_workflow_result(run_id, storage=store)
    >>> asyncio.run(main())
    5
"""

__version__ = "0.1.10"

from pyworkflow.config import (
    configure,
    configure_from_yaml,
    get_config,
    get_storage,
    reset_config,
)
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
    has_step_context,
    set_step_context,
)
from pyworkflow.core.exceptions import (
    CancellationError,
    ChildWorkflowError,
    ChildWorkflowFailedError,
    FatalError,
    HookAlreadyReceivedError,
    HookExpiredError,
    HookNotFoundError,
    InvalidTokenError,
    MaxNestingDepthError,
    NondeterminismError,
    RetryableError,
    SuspensionSignal,
    WorkflowAlreadyRunningError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from pyworkflow.core.registry import get_step, get_workflow, list_steps, list_workflows
from pyworkflow.core.scheduled import (
    ScheduledWorkflowMetadata,
    activate_scheduled_workflows,
    get_scheduled_workflow,
    list_scheduled_workflows,
    scheduled_workflow,
)
from pyworkflow.core.step import step
from pyworkflow.core.workflow import workflow
from pyworkflow.discovery import DiscoveryError, discover_workflows
from pyworkflow.engine.executor import (
    ConfigurationError,
    cancel_workflow,
    get_workflow_chain,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    resume,
    start,
)
from pyworkflow.observability import (
    bind_step_context,
    bind_workflow_context,
    configure_logging,
    get_logger,
)
from pyworkflow.primitives.child_handle import ChildWorkflowHandle
from pyworkflow.primitives.child_workflow import start_child_workflow
from pyworkflow.primitives.continue_as_new import continue_as_new
from pyworkflow.primitives.define_hook import TypedHook, define_hook
from pyworkflow.primitives.hooks import hook
from pyworkflow.primitives.resume_hook import ResumeResult, resume_hook
from pyworkflow.primitives.schedule import (
    backfill_schedule,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    pause_schedule,
    resume_schedule,
    trigger_schedule,
    update_schedule,
)
from pyworkflow.primitives.shield import shield
from pyworkflow.primitives.sleep import sleep
from pyworkflow.runtime import LocalRuntime, Runtime, get_runtime, register_runtime
from pyworkflow.scheduler import LocalScheduler
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import (
    CalendarSpec,
    OverlapPolicy,
    RunStatus,
    Schedule,
    ScheduleSpec,
    ScheduleStatus,
    WorkflowRun,
)
from pyworkflow.storage.sqlite import SQLiteStorageBackend

__all__ = [
    "CalendarSpec",
    "CancellationError",
    "ChildWorkflowError",
    "ChildWorkflowFailedError",
    "ChildWorkflowHandle",
    "ConfigurationError",
    "DiscoveryError",
    "FatalError",
    "FileStorageBackend",
    "HookAlreadyReceivedError",
    "HookExpiredError",
    "HookNotFoundError",
    "InMemoryStorageBackend",
    "InvalidTokenError",
    "LocalContext",
    "LocalRuntime",
    "LocalScheduler",
    "MaxNestingDepthError",
    "MockContext",
    "NondeterminismError",
    "OverlapPolicy",
    "ResumeResult",
    "RetryableError",
    "RunStatus",
    "Runtime",
    "SQLiteStorageBackend",
    "Schedule",
    "ScheduleSpec",
    "ScheduleStatus",
    "ScheduledWorkflowMetadata",
    "StepContext",
    "StorageBackend",
    "SuspensionSignal",
    "TypedHook",
    "WorkflowAlreadyRunningError",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowRun",
    "WorkflowTimeoutError",
    "__version__",
    "activate_scheduled_workflows",
    "backfill_schedule",
    "bind_step_context",
    "bind_workflow_context",
    "cancel_workflow",
    "configure",
    "configure_from_yaml",
    "configure_logging",
    "continue_as_new",
    "create_schedule",
    "define_hook",
    "delete_schedule",
    "discover_workflows",
    "get_config",
    "get_context",
    "get_logger",
    "get_runtime",
    "get_schedule",
    "get_scheduled_workflow",
    "get_step",
    "get_step_context",
    "get_storage",
    "get_workflow",
    "get_workflow_chain",
    "get_workflow_events",
    "get_workflow_result",
    "get_workflow_run",
    "has_context",
    "has_step_context",
    "hook",
    "list_scheduled_workflows",
    "list_schedules",
    "list_steps",
    "list_workflows",
    "pause_schedule",
    "register_runtime",
    "reset_config",
    "reset_context",
    "resume",
    "resume_hook",
    "resume_schedule",
    "scheduled_workflow",
    "set_context",
    "set_step_context",
    "shield",
    "sleep",
    "start",
    "start_child_workflow",
    "step",
    "trigger_schedule",
    "update_schedule",
    "workflow",
]
