"""The Celery tasks: each decodes its message, calls the engine, sends follow-ups.

Workflow semantics live in the engine (DESIGN.md §1); these tasks only carry
commands between processes:

* ``pyworkflow.start_workflow`` creates a run and drives its first activation;
* ``pyworkflow.resume_workflow`` drives a stored run again;
* ``pyworkflow.execute_step`` runs one attempt of a step and records its outcome once;
* ``pyworkflow.tick`` (sent by Beat) claims due timers and sends the resumes.

Every follow-up message is sent only after the commit that made it necessary, and
every task is safe to run twice. Retries never happen inside Celery: a failed
attempt is recorded with a durable retry timer, which the tick fires.

Example (not run: it needs a broker and a worker)::

    from pyworkflow.celery.tasks import resume_workflow_task
    resume_workflow_task.delay("run_0123456789abcdef")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from celery.signals import worker_process_shutdown, worker_shutdown
from loguru import logger

from pyworkflow.celery import loop
from pyworkflow.celery.app import celery_app
from pyworkflow.celery.queues import (
    EXECUTE_STEP,
    RESUME_WORKFLOW,
    START_WORKFLOW,
)
from pyworkflow.context.base import reset_context, set_context
from pyworkflow.context.step_worker import StepWorkerContext
from pyworkflow.core.exceptions import WorkflowNotFoundError
from pyworkflow.engine.dispatch import StepCommand
from pyworkflow.engine.outcome import Outcome
from pyworkflow.engine.remote_step import execute_step_command
from pyworkflow.runtime.activator import (
    max_duration_text,
    recovery_settings,
    registered_workflow,
)
from pyworkflow.runtime.driver import RunLinks, create_run, drive, new_run_record, resume_run
from pyworkflow.runtime.lease import new_owner
from pyworkflow.storage.base import CommitBatch, RunAlreadyExistsError, StorageBackend
from pyworkflow.storage.schemas import Timer, WorkflowRun

P = ParamSpec("P")
R = TypeVar("R", covariant=True)
StorageConfig = dict[str, Any] | None


class CeleryTask(Protocol, Generic[P, R]):
    """What ``@celery_app.task`` returns, as far as pyworkflow uses it.

    Example:
        >>> resume_workflow_task.name
        'pyworkflow.resume_workflow'
    """

    name: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    def delay(self, *args: Any, **kwargs: Any) -> Any: ...
    def apply_async(
        self,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any: ...


def _task(name: str, **options: Any) -> Callable[[Callable[P, R]], CeleryTask[P, R]]:
    """Register a task on the pyworkflow app (typed, since celery ships no stubs).

    Our tasks ignore results: the outcome of every run and step is in storage, and a
    result backend would cost a write per task plus, in the sender, a subscription
    per message sent.
    """

    def register(func: Callable[P, R]) -> CeleryTask[P, R]:
        registered: CeleryTask[P, R] = celery_app.task(name=name, **options)(func)
        return registered

    return register


# ------------------------------------------------------------------ follow-up messages


def _send_resume(run_id: str, storage_config: StorageConfig, at: datetime | None = None) -> None:
    """Send ``resume_workflow`` (at ``at``); if the broker stays unreachable, leave a
    durable ``wake`` timer instead, so the next tick after the outage resumes the run."""
    delay = (at - datetime.now(UTC)).total_seconds() if at is not None else 0.0
    try:
        resume_workflow_task.apply_async(
            args=[run_id],
            kwargs={"storage_config": storage_config},
            countdown=delay if delay > 0 else None,
        )
    except Exception as error:
        logger.warning("Could not send the resume of {} ({}); leaving a wake timer", run_id, error)
        schedule_workflow_resumption(run_id, at or datetime.now(UTC), storage_config)


def _send_steps(commands: list[StepCommand], storage_config: StorageConfig) -> None:
    """One ``execute_step`` per command (the command's fields are the task's keyword
    arguments). A command whose send fails is dispatched again by the run's watchdog
    timer, so a failure is logged rather than raised."""
    for cmd in commands:
        try:
            execute_step_task.apply_async(
                kwargs={**cmd.to_message(), "storage_config": storage_config}
            )
        except Exception as error:
            logger.error("Could not send step {} of run {}: {}", cmd.step_id, cmd.run_id, error)


@dataclass
class _Outbox:
    """Messages an activation produced, published by the task from its own thread
    once the engine calls return (Celery's producers are not the loop's business):
    step commands, and resumes of other runs (children to start, parents to wake,
    continuations, children to cancel)."""

    steps: list[StepCommand] = field(default_factory=list)
    resumes: list[str] = field(default_factory=list)

    async def collect(self, commands: list[StepCommand]) -> None:
        self.steps.extend(commands)

    async def launch(self, run_id: str, wait: bool) -> None:
        self.resumes.append(run_id)

    async def wake(self, run_id: str) -> None:
        self.resumes.append(run_id)

    def links(self) -> RunLinks:
        return RunLinks(self.launch, self.wake, follow_continuations=False)

    def flush(self, storage_config: StorageConfig) -> None:
        _send_steps(self.steps, storage_config)
        for run_id in dict.fromkeys(self.resumes):
            _send_resume(run_id, storage_config)


# ------------------------------------------------------------------ engine calls


async def _resume(
    storage: StorageBackend, run_id: str, outbox: _Outbox
) -> Outcome | WorkflowRun | None:
    # recovery: a run whose activation died (its worker was killed) is recorded as
    # interrupted and continued, or failed, per its worker-loss settings (API §5.5).
    return await resume_run(
        storage,
        run_id,
        dispatch=True,
        runtime_name="celery",
        send=outbox.collect,
        recovery=True,
        links=outbox.links(),
    )


async def _existing_run(
    storage: StorageBackend, run_id: str, idempotency_key: str | None
) -> WorkflowRun | None:
    run = await storage.get_run(run_id)
    if run is None and idempotency_key is not None:
        run = await storage.get_run_by_idempotency_key(idempotency_key)
    return run


async def _start(
    storage: StorageBackend,
    workflow_name: str,
    args_json: str,
    kwargs_json: str,
    run_id: str,
    idempotency_key: str | None,
    outbox: _Outbox,
) -> str:
    """Create and drive the run; a run that exists already (a duplicate delivery, or
    the same idempotency key) is resumed instead, which is harmless if it is busy."""
    existing = await _existing_run(storage, run_id, idempotency_key)
    if existing is None:
        meta = registered_workflow(workflow_name)
        recover, attempts = recovery_settings(meta)
        run = new_run_record(
            run_id,
            workflow_name,
            args_json,
            kwargs_json,
            idempotency_key=idempotency_key,
            max_duration=max_duration_text(meta),
            recover_on_worker_loss=recover,
            max_recovery_attempts=attempts,
        )
        owner = new_owner()
        try:
            state = await create_run(storage, run, owner)
        except (RunAlreadyExistsError, ValueError):
            # Lost a race with a second delivery (same id) or start (same key).
            existing = await _existing_run(storage, run_id, idempotency_key)
            if existing is None:
                raise
        else:
            await drive(
                storage,
                run,
                state,
                owner,
                dispatch=True,
                runtime_name="celery",
                send=outbox.collect,
                links=outbox.links(),
            )
            return run_id
    await _resume(storage, existing.run_id, outbox)
    return existing.run_id


# ------------------------------------------------------------------ tasks


@_task(START_WORKFLOW, ignore_result=True)
def start_workflow_task(
    workflow_name: str,
    args_json: str,
    kwargs_json: str,
    run_id: str,
    storage_config: StorageConfig = None,
    idempotency_key: str | None = None,
) -> str:
    """Create run ``run_id`` of ``workflow_name`` and drive it; returns the run id
    (that of the existing run when the idempotency key is taken).

    Example (not run: needs a worker)::

        start_workflow_task.delay("process_order", '["A-1"]', "{}", "run_abc")
    """
    outbox = _Outbox()

    async def body() -> str:
        storage = await loop.storage_for(storage_config)
        return await _start(
            storage, workflow_name, args_json, kwargs_json, run_id, idempotency_key, outbox
        )

    try:
        return loop.run(body())
    finally:
        outbox.flush(storage_config)


@_task(RESUME_WORKFLOW, ignore_result=True)
def resume_workflow_task(run_id: str, storage_config: StorageConfig = None) -> str | None:
    """Drive stored run ``run_id`` with what is new in its log; returns its status.

    A run that another activation holds is left to it (that one sees the new events);
    a finished or unknown run is left alone.

    Example (not run: needs a worker)::

        resume_workflow_task.delay("run_abc")
    """
    outbox = _Outbox()

    async def body() -> str | None:
        storage = await loop.storage_for(storage_config)
        await _resume(storage, run_id, outbox)
        run = await storage.get_run(run_id)
        return run.status.value if run is not None else None

    try:
        return loop.run(body())
    except WorkflowNotFoundError:
        logger.warning("Resume of unknown run {} ignored", run_id)
        return None
    finally:
        outbox.flush(storage_config)


@_task(EXECUTE_STEP, ignore_result=True)
def execute_step_task(
    step_name: str,
    args_json: str,
    kwargs_json: str,
    run_id: str,
    step_id: str,
    max_retries: int = 3,
    storage_config: StorageConfig = None,
    context_data: dict[str, Any] | None = None,
    context_class_name: str | None = None,
    attempt: int = 1,
    dispatch: int = 1,
) -> bool:
    """Run attempt ``attempt`` of step ``step_id`` and record its outcome, once; then
    resume the run. Returns whether the run was resumed.

    The retry policy is the step's own (from this worker's registry): ``max_retries``
    and the context arguments are accepted for compatibility with upstream messages.

    Example (not run: needs a worker)::

        execute_step_task.delay("charge_card", '["A-1"]', "{}", "run_abc", "step_charge_card_1")
    """
    cmd = StepCommand(run_id, step_id, step_name, args_json, kwargs_json, attempt, dispatch)

    async def body() -> bool:
        storage = await loop.storage_for(storage_config)
        # The body may poll get_context().check_cancellation(); the worker keeps it
        # current while the step runs.
        ctx = StepWorkerContext(run_id)
        ctx._runtime = "celery"
        token = set_context(ctx)
        try:
            return await execute_step_command(storage, cmd, on_cancel=ctx.request_cancellation)
        finally:
            reset_context(token)

    resume = loop.run(body())
    if resume:
        _send_resume(run_id, storage_config)
    return resume


def schedule_workflow_resumption(
    run_id: str, resume_at: datetime, storage_config: StorageConfig = None
) -> None:
    """Resume ``run_id`` at ``resume_at`` with a durable ``wake`` timer (fired by the
    tick), not a broker countdown: a wake-up a month away never sits in Redis.

    Example (not run: needs storage)::

        schedule_workflow_resumption("run_abc", datetime.now(UTC) + timedelta(hours=1))
    """
    when = resume_at if resume_at.tzinfo is not None else resume_at.replace(tzinfo=UTC)

    async def write() -> None:
        storage = await loop.storage_for(storage_config)
        await storage.commit(
            CommitBatch(run_id=run_id, timers_upsert=[Timer(run_id, "wake", "wake", when)])
        )

    loop.run(write())


def _on_shutdown(**_: Any) -> None:
    loop.shutdown()


worker_process_shutdown.connect(_on_shutdown, weak=False)
worker_shutdown.connect(_on_shutdown, weak=False)
