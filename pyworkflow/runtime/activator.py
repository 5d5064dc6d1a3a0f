"""Drive one activation of a stored run: replay, execute, record the outcome.

Shared by every runtime; only how commands are carried out differs between them.
The caller must hold the run's lease (see :mod:`pyworkflow.runtime.lease`).

Example:
    >>> deadline_of(None) is None
    True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from pyworkflow.config import get_config
from pyworkflow.context.local import LocalContext
from pyworkflow.context.runner import run_workflow_function
from pyworkflow.core.registry import WorkflowMetadata, get_workflow
from pyworkflow.engine.activation import Activation, EventLimits
from pyworkflow.engine.finish import finish
from pyworkflow.engine.followups import schedule_of
from pyworkflow.engine.outcome import Outcome, Suspended
from pyworkflow.engine.state import RunState
from pyworkflow.runtime.event_cache import EVENT_LOGS
from pyworkflow.runtime.lease import LeaseKeeper
from pyworkflow.serialization.decoder import deserialize_args, deserialize_kwargs
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import WorkflowRun
from pyworkflow.utils.duration import parse_duration_seconds


def deadline_of(run: WorkflowRun | None) -> datetime | None:
    """When the run's ``max_duration`` runs out, or None."""
    if run is None or not run.max_duration or run.started_at is None:
        return None
    return run.started_at + timedelta(seconds=parse_duration_seconds(run.max_duration))


def registered_workflow(name: str) -> WorkflowMetadata:
    """The workflow's definition in this process, or a clear error."""
    meta = get_workflow(name)
    if meta is None:
        raise ValueError(
            f"Workflow '{name}' is not registered in this process. Import the module that "
            "defines it (or list it in PYWORKFLOW_DISCOVER / pyworkflow.config.yaml) before "
            "resuming its runs."
        )
    return meta


def max_duration_text(meta: WorkflowMetadata) -> str | None:
    """The workflow's ``max_duration`` as stored on its runs ("1h", "90s")."""
    value = meta.max_duration
    if value is None or isinstance(value, str):
        return value
    return f"{parse_duration_seconds(value):g}s"


def recovery_settings(meta: WorkflowMetadata) -> tuple[bool, int]:
    """``(recover_on_worker_loss, max_recovery_attempts)`` for a new run (API §5.5):
    the decorator, then the configuration, then (recover only) the durable flag.

    Example:
        >>> from pyworkflow.core.registry import WorkflowMetadata
        >>> async def wf() -> None: ...
        >>> recovery_settings(WorkflowMetadata("wf", wf, wf, max_recovery_attempts=5))
        (True, 5)
    """
    config = get_config()
    recover = meta.recover_on_worker_loss
    if recover is None:
        recover = config.default_recover_on_worker_loss
    if recover is None:
        recover = meta.durable if meta.durable is not None else True
    attempts = meta.max_recovery_attempts
    if attempts is None:
        attempts = config.default_max_recovery_attempts
    return recover, attempts


def current_limits() -> EventLimits:
    """The event limits from the configuration."""
    cfg = get_config()
    return EventLimits(cfg.event_soft_limit, cfg.event_hard_limit, cfg.event_warning_interval)


async def activate(
    storage: StorageBackend,
    run: WorkflowRun,
    state: RunState | None,
    owner: str,
    runtime_name: str = "local",
    dispatch: bool = False,
    launch: Callable[[str, bool], Awaitable[None]] | None = None,
) -> tuple[Outcome, Activation]:
    """Run one activation of ``run`` (lease held by ``owner``) and record its outcome.

    ``launch(child_run_id, wait)`` starts child runs this activation creates."""
    meta = registered_workflow(run.workflow_name)
    if state is None:
        state = RunState.from_events(run.run_id, await EVENT_LOGS.load(storage, run.run_id))
    act = Activation(
        run.run_id, run.workflow_name, storage, state, lease_owner=owner, limits=current_limits()
    )
    if dispatch:
        act.commands = []
    act.nesting_depth = run.nesting_depth
    act.parent_run_id = run.parent_run_id
    act.scheduled = schedule_of(run.idempotency_key) is not None or bool(run.continued_from_run_id)
    act.launch = launch
    ctx = LocalContext(run.run_id, run.workflow_name, storage, True, activation=act)
    ctx._runtime = runtime_name
    args = deserialize_args(run.input_args)
    kwargs = deserialize_kwargs(run.input_kwargs)
    async with LeaseKeeper(storage, run.run_id, owner):
        outcome = await run_workflow_function(
            ctx,
            meta.original_func,
            args,
            kwargs,
            deadline=deadline_of(run),
            max_duration=run.max_duration,
        )
        outcome = await finish(act, outcome)
    if isinstance(outcome, Suspended):
        # The next activation (often in this process) then reads only the new events.
        log = act.state.whole_log()
        if log is not None:
            EVENT_LOGS.keep(storage, run.run_id, log)
    return outcome, act
