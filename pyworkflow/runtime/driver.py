"""Drive stored runs: create them, activate them, resume them — for every runtime.

The local runtime calls these with inline steps; distributed workers call them in
dispatch mode and receive the step commands to send once the activation that
produced them has committed.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> asyncio.run(resume_run(InMemoryStorageBackend(), "run_unknown"))
    Traceback (most recent call last):
    ...
    pyworkflow.core.exceptions.WorkflowNotFoundError: Workflow run not found: run_unknown
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.core.exceptions import WorkflowError, WorkflowNotFoundError
from pyworkflow.engine import events as ev
from pyworkflow.engine.dispatch import StepCommand, resume_guard
from pyworkflow.engine.finish import owes_followups
from pyworkflow.engine.followups import run_followups
from pyworkflow.engine.outcome import Aborted, Failed, Interrupted, Outcome, Suspended
from pyworkflow.engine.state import RunState
from pyworkflow.runtime.activator import activate, deadline_of, registered_workflow
from pyworkflow.runtime.lease import LEASE_SECONDS, acquire, new_owner, owner_is_dead
from pyworkflow.storage.base import CommitBatch, RunLease, RunUpdate, StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, Timer, WorkflowRun

CommandSink = Callable[[list[StepCommand]], Awaitable[None]]
SuspendHook = Callable[[Suspended], None]


@dataclass
class RunLinks:
    """How a runtime starts and wakes *other* runs: children (``launch(run_id,
    wait)``), parents, children to cancel and continuations (``wake(run_id)``)."""

    launch: Callable[[str, bool], Awaitable[None]]
    wake: Callable[[str], Awaitable[None]]
    # Inline runtimes continue a chain in the same driver loop instead of waking it.
    follow_continuations: bool = True


async def create_run(
    storage: StorageBackend,
    run: WorkflowRun,
    owner: str | None,
    metadata: dict[str, Any] | None = None,
    *,
    guard: bool = False,
) -> RunState:
    """Insert ``run`` with ``workflow.started`` and its deadline timer, in one commit;
    returns the replay state of the new log.

    With ``owner`` the new run is leased to it (the caller activates it now). A run
    created for another process to start (``owner=None``) can get ``guard``: a resume
    guard timer, so that it still starts if the message announcing it is lost.
    """
    started = ev.create_workflow_started_event(
        run.run_id, run.workflow_name, run.input_args, run.input_kwargs, metadata
    )
    deadline = deadline_of(run)
    await storage.commit(
        CommitBatch(
            run_id=run.run_id,
            events=[started],
            expected_sequence=-1,
            create_run=run,
            lease_owner=owner,
            lease_seconds=LEASE_SECONDS,
            timers_upsert=[
                *([Timer(run.run_id, "deadline", "max_duration", deadline)] if deadline else []),
                *([resume_guard(run.run_id, datetime.now(UTC))] if guard else []),
            ],
        )
    )
    return RunState.from_events(run.run_id, [started])


def new_run_record(
    run_id: str,
    workflow_name: str,
    args_json: str,
    kwargs_json: str,
    *,
    idempotency_key: str | None = None,
    max_duration: str | None = None,
    recover_on_worker_loss: bool = True,
    max_recovery_attempts: int = 3,
    status: RunStatus = RunStatus.RUNNING,
) -> WorkflowRun:
    """A run record started now (RUNNING: activated by its creator; PENDING: to be
    activated by another process)."""
    now = datetime.now(UTC)
    return WorkflowRun(
        run_id=run_id,
        workflow_name=workflow_name,
        status=status,
        created_at=now,
        updated_at=now,
        started_at=now,
        input_args=args_json,
        input_kwargs=kwargs_json,
        idempotency_key=idempotency_key,
        max_duration=max_duration,
        recover_on_worker_loss=recover_on_worker_loss,
        max_recovery_attempts=max_recovery_attempts,
    )


async def drive(
    storage: StorageBackend,
    run: WorkflowRun,
    state: RunState | None,
    owner: str,
    *,
    mark_running: bool = False,
    dispatch: bool = False,
    runtime_name: str = "local",
    send: CommandSink | None = None,
    on_suspend: SuspendHook | None = None,
    links: RunLinks | None = None,
) -> Outcome:
    """Activate ``run`` (lease held by ``owner``) until no unseen event is left.

    In dispatch mode the step commands of each activation go to ``send`` after the
    activation's commit recorded them. A storage failure re-raises the storage's own
    error (the run stays resumable).
    """
    while True:
        try:
            # acquire() marks the run RUNNING with its lease; this covers a run read
            # before that (a store without begin_activation's single write).
            if mark_running and run.status is not RunStatus.RUNNING:
                await storage.commit(
                    CommitBatch(run_id=run.run_id, run_update=RunUpdate(RunStatus.RUNNING))
                )
            outcome, act = await activate(
                storage, run, state, owner, runtime_name, dispatch, links.launch if links else None
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(storage.release_run_lease(run.run_id, owner))
            raise
        if isinstance(outcome, Interrupted):
            raise outcome.error
        if isinstance(outcome, Aborted):
            return outcome
        if not isinstance(outcome, Suspended):
            if not owes_followups(act, outcome):
                return outcome
            nxt = await after_end(storage, run.run_id, links)
            if nxt is None:
                return outcome
            owner = new_owner()
            if not await acquire(storage, nxt, owner):
                return outcome
            current = await _current_unless_ended(storage, nxt, owner)
            if current is None or current.status in TERMINAL_STATUSES:
                return outcome
            # The chain goes on in this loop (no recursion, however long it is).
            run, state, mark_running = current, None, True
            continue
        if act.commands and send is not None:
            await send(list(act.commands))
        if on_suspend is not None:
            on_suspend(outcome)
        # An event appended while we held the lease (a step result, a hook) found the
        # lease taken and left the run to us: look for it after releasing. Events our
        # final commit had to merge were never seen by the workflow code either.
        if not act.merged_late:
            latest = await storage.get_latest_event(run.run_id)
            if latest is None or (latest.sequence or 0) <= act.state.last_sequence:
                return outcome
        owner = new_owner()
        if not await acquire(storage, run.run_id, owner):
            return outcome
        current = await _current_unless_ended(storage, run.run_id, owner)
        if current is None or current.status in TERMINAL_STATUSES:
            return outcome
        run, state, mark_running = current, None, True


async def resume_run(
    storage: StorageBackend,
    run_id: str,
    *,
    dispatch: bool = False,
    runtime_name: str = "local",
    send: CommandSink | None = None,
    on_suspend: SuspendHook | None = None,
    recovery: bool = False,
    links: RunLinks | None = None,
) -> Outcome | WorkflowRun | None:
    """Advance a stored run now.

    Returns the outcome of the activation; the run record itself when it had already
    ended; None when another activation holds it (that one will see what is new).
    With ``recovery``, a run whose previous activation died holding the lease is
    handled per its worker-loss settings first (see :func:`recover_lost_run`).
    """
    run = await storage.get_run(run_id)
    if run is None:
        raise WorkflowNotFoundError(run_id)
    if run.status in TERMINAL_STATUSES:
        await _settle_ended(storage, run, links)
        return run
    registered_workflow(run.workflow_name)
    lost = await _lost_lease(storage, run) if recovery else None
    owner = new_owner()
    if not await acquire(storage, run_id, owner):
        return None
    # Another activation may have ended the run between our read and our lease; with
    # the lease held nobody else can, so this read is the one to trust.
    current = await _current_unless_ended(storage, run_id, owner)
    if current is None or current.status in TERMINAL_STATUSES:
        return current
    run = current
    if lost is not None:
        failed = await recover_lost_run(storage, run, owner, lost)
        if failed is not None:
            return failed
    return await drive(
        storage,
        run,
        None,
        owner,
        mark_running=True,
        dispatch=dispatch,
        runtime_name=runtime_name,
        send=send,
        on_suspend=on_suspend,
        links=links,
    )


async def after_end(storage: StorageBackend, run_id: str, links: RunLinks | None) -> str | None:
    """Do the ended run's follow-ups; wake whom they name. Returns the next run of a
    continue-as-new chain when the caller should drive it itself."""
    ended = await storage.get_run(run_id)
    if ended is None:
        return None
    done = await run_followups(storage, ended)
    if links is not None:
        for other in done.wake:
            await _wake_quietly(links, other)
    if done.continue_to is None:
        return None
    if links is not None and links.follow_continuations:
        return done.continue_to
    if links is not None:
        await _wake_quietly(links, done.continue_to)
    return None


async def _wake_quietly(links: RunLinks, run_id: str) -> None:
    try:
        await links.wake(run_id)
    except Exception as error:
        # Its guard timer still wakes it; one run's failure is not the caller's.
        logger.info("Waking run {} failed: {}", run_id, error)


async def _settle_ended(storage: StorageBackend, run: WorkflowRun, links: RunLinks | None) -> None:
    """An ended run was woken: by its follow-up timer (a crash interrupted them), or
    by a late writer's timer (a step worker finishing after a cancellation) that
    would otherwise keep waking it."""
    timers = await storage.list_timers(run.run_id)
    if not timers:
        return
    if any(t.kind == "followup" for t in timers):
        nxt = await after_end(storage, run.run_id, links)
        if nxt is not None and links is not None:
            await _wake_quietly(links, nxt)
    await storage.commit(CommitBatch(run_id=run.run_id, clear_timers=True))


async def _current_unless_ended(
    storage: StorageBackend, run_id: str, owner: str
) -> WorkflowRun | None:
    """The run as stored now (we hold its lease); the lease is given back if the run
    has ended meanwhile, so nothing more is done to it."""
    run = await storage.get_run(run_id)
    if run is None or run.status in TERMINAL_STATUSES:
        await storage.release_run_lease(run_id, owner)
    return run


async def _lost_lease(storage: StorageBackend, run: WorkflowRun) -> RunLease | None:
    """The lease a dead activation left on a running run, if that is what happened.

    A lease released on purpose (e.g. after a storage outage) is no worker loss."""
    if run.status not in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
        return None
    lease = await storage.get_run_lease(run.run_id)
    if lease is None:
        return None
    if lease.expires_at <= datetime.now(UTC) or owner_is_dead(lease.owner):
        return lease
    return None


async def recover_lost_run(
    storage: StorageBackend, run: WorkflowRun, owner: str, lost: RunLease
) -> Failed | None:
    """Worker-loss recovery (API.md §5.5), with the lease held by ``owner``.

    Recovery disabled, or attempts exhausted: the run fails (returned). Otherwise
    ``workflow.interrupted`` is recorded, ``recovery_attempts`` bumped, the run is
    RUNNING again, and None is returned so the caller replays and continues it.
    """
    attempt = run.recovery_attempts + 1
    reason = None
    if not run.recover_on_worker_loss:
        reason = "Worker lost and recovery is disabled"
    elif attempt > run.max_recovery_attempts:
        reason = f"Exceeded max recovery attempts ({run.max_recovery_attempts})"
    if reason is not None:
        error = WorkflowError(reason)
        failed = ev.create_workflow_failed_event(run.run_id, reason, "WorkerLostError")
        update = RunUpdate(
            RunStatus.FAILED, error=reason, completed_at=datetime.now(UTC), release_lease=owner
        )
        await storage.commit(
            CommitBatch(run_id=run.run_id, events=[failed], run_update=update, clear_timers=True)
        )
        return Failed(error)
    # The counter first: a crash right after it over-counts, never under-counts.
    await storage.update_run_recovery_attempts(run.run_id, attempt)
    latest = await storage.get_latest_event(run.run_id)
    interrupted = ev.create_workflow_interrupted_event(
        run.run_id,
        "worker_lost",
        worker_id=lost.owner,
        last_event_sequence=latest.sequence if latest else None,
        recovery_attempt=attempt,
    )
    # The event says what happened; the status says what is going on now: this
    # activation runs the run again, and if it dies too the stale-run scan finds a
    # RUNNING run with an expired lease like any other.
    running = RunUpdate(RunStatus.RUNNING)
    await storage.commit(CommitBatch(run_id=run.run_id, events=[interrupted], run_update=running))
    return None
