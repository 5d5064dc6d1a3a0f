"""The public surface: names users import must exist (API.md §1, §2)."""

from __future__ import annotations

import importlib

import pyworkflow

# The 89 names of upstream's pyworkflow.__all__ (API.md §1).
UPSTREAM = {
    "__version__",
    "configure",
    "configure_from_yaml",
    "get_config",
    "get_storage",
    "reset_config",
    "discover_workflows",
    "DiscoveryError",
    "workflow",
    "step",
    "scheduled_workflow",
    "create_schedule",
    "get_schedule",
    "list_schedules",
    "update_schedule",
    "pause_schedule",
    "resume_schedule",
    "delete_schedule",
    "trigger_schedule",
    "backfill_schedule",
    "activate_scheduled_workflows",
    "get_scheduled_workflow",
    "list_scheduled_workflows",
    "ScheduledWorkflowMetadata",
    "sleep",
    "hook",
    "define_hook",
    "TypedHook",
    "resume_hook",
    "ResumeResult",
    "shield",
    "continue_as_new",
    "start_child_workflow",
    "ChildWorkflowHandle",
    "start",
    "resume",
    "cancel_workflow",
    "get_workflow_run",
    "get_workflow_events",
    "get_workflow_chain",
    "WorkflowError",
    "FatalError",
    "RetryableError",
    "CancellationError",
    "SuspensionSignal",
    "WorkflowNotFoundError",
    "WorkflowAlreadyRunningError",
    "HookNotFoundError",
    "HookExpiredError",
    "HookAlreadyReceivedError",
    "InvalidTokenError",
    "ConfigurationError",
    "ChildWorkflowError",
    "ChildWorkflowFailedError",
    "MaxNestingDepthError",
    "WorkflowContext",
    "LocalContext",
    "MockContext",
    "get_context",
    "has_context",
    "set_context",
    "reset_context",
    "StepContext",
    "get_step_context",
    "has_step_context",
    "set_step_context",
    "list_workflows",
    "get_workflow",
    "list_steps",
    "get_step",
    "StorageBackend",
    "FileStorageBackend",
    "InMemoryStorageBackend",
    "WorkflowRun",
    "RunStatus",
    "Schedule",
    "ScheduleSpec",
    "CalendarSpec",
    "ScheduleStatus",
    "OverlapPolicy",
    "Runtime",
    "LocalRuntime",
    "get_runtime",
    "register_runtime",
    "LocalScheduler",
    "configure_logging",
    "get_logger",
    "bind_workflow_context",
    "bind_step_context",
}

# Upstream names whose feature arrives with a later issue (hooks #5, children and
# continue-as-new #6, schedules #7). Shrink this set as they land; never grow it.
NOT_YET: set[str] = set()  # every upstream name is exported

# Ours, beyond upstream 0.1.10.
ADDITIONS = {
    "get_workflow_result",
    "NondeterminismError",
    "WorkflowTimeoutError",
    "SQLiteStorageBackend",
}


def test_upstream_list_has_89_names() -> None:
    assert len(UPSTREAM) == 89


def test_all_is_pinned() -> None:
    assert set(pyworkflow.__all__) == (UPSTREAM - NOT_YET) | ADDITIONS


def test_every_exported_name_resolves() -> None:
    for name in pyworkflow.__all__:
        assert getattr(pyworkflow, name) is not None, name


def test_version() -> None:
    assert pyworkflow.__version__ == "0.1.10"


def test_module_paths_users_import() -> None:
    for module, names in {
        "pyworkflow.storage": [
            "StorageBackend",
            "FileStorageBackend",
            "SQLiteStorageBackend",
            "WorkflowRun",
            "StepExecution",
            "Hook",
            "RunStatus",
            "StepStatus",
            "HookStatus",
            "storage_to_config",
            "config_to_storage",
            "PostgresStorageBackend",
        ],
        "pyworkflow.engine.executor": [
            "start",
            "resume",
            "get_workflow_run",
            "get_workflow_events",
            "get_workflow_chain",
            "cancel_workflow",
            "ConfigurationError",
        ],
        "pyworkflow.primitives.hooks": ["hook"],
        "pyworkflow.primitives.schedule": [
            "create_schedule",
            "get_schedule",
            "list_schedules",
            "update_schedule",
            "pause_schedule",
            "resume_schedule",
            "delete_schedule",
            "trigger_schedule",
            "backfill_schedule",
        ],
        "pyworkflow.core.scheduled": [
            "scheduled_workflow",
            "ScheduledWorkflowMetadata",
            "get_scheduled_workflow",
            "list_scheduled_workflows",
            "register_scheduled_workflow",
            "unregister_scheduled_workflow",
            "clear_scheduled_workflows",
            "activate_scheduled_workflows",
        ],
        "pyworkflow.utils.schedule": [
            "calculate_next_run_time",
            "calculate_backfill_times",
            "validate_cron_expression",
            "describe_schedule",
        ],
        "pyworkflow.scheduler": ["LocalScheduler"],
        "pyworkflow.primitives.child_workflow": ["start_child_workflow", "MAX_NESTING_DEPTH"],
        "pyworkflow.primitives.child_handle": ["ChildWorkflowHandle"],
        "pyworkflow.primitives.continue_as_new": ["continue_as_new"],
        "pyworkflow.primitives.define_hook": ["define_hook", "TypedHook", "HookValidationError"],
        "pyworkflow.primitives.resume_hook": [
            "resume_hook",
            "ResumeResult",
            "HOOK_TOKEN_SEPARATOR",
            "create_hook_token",
            "parse_hook_token",
        ],
        "pyworkflow.core.workflow": ["workflow", "execute_workflow_with_context"],
        "pyworkflow.core.step": ["step", "_generate_step_id"],
        "pyworkflow.serialization.encoder": [
            "EnhancedJSONEncoder",
            "serialize",
            "serialize_args",
            "serialize_kwargs",
        ],
        "pyworkflow.serialization.decoder": [
            "enhanced_json_decoder",
            "deserialize",
            "deserialize_args",
            "deserialize_kwargs",
        ],
        "pyworkflow.utils.duration": [
            "parse_duration",
            "parse_duration_string",
            "format_duration",
            "duration_to_timedelta",
        ],
        "pyworkflow.runtime": ["Runtime", "LocalRuntime", "get_runtime", "register_runtime"],
        "pyworkflow.runtime.factory": ["validate_runtime_durable", "list_runtimes"],
        "pyworkflow.context.step_context": ["_set_step_context_internal", "_reset_step_context"],
    }.items():
        mod = importlib.import_module(module)
        for name in names:
            assert hasattr(mod, name), f"{module}.{name}"
