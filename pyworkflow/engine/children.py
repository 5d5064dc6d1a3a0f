"""Child workflows, the parent side: start a run from a run, wait for its outcome.

A child call takes the next position. The parent's log records
``child_workflow.started`` (with the child's run id) *before* the child run is
created, so a crash in between is repaired on replay: a recorded child whose run is
missing is created then. The runtime's ``launch`` starts the child (inline on the
local runtime, a task on Celery). When the child ends, its outcome is appended to
the parent's log (see :mod:`pyworkflow.engine.followups`) and the parent resumes;
on each replay the parent also looks at a pending child's run directly, so a lost
notification cannot strand it.

Example:
    >>> child_base_id("charge", "[1]", "{}")
    'child_charge_145060d97be4a3ff'
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyworkflow.core.exceptions import (
    ChildWorkflowFailedError,
    MaxNestingDepthError,
    SuspensionSignal,
)
from pyworkflow.engine import events as ev
from pyworkflow.engine.activation import Activation, StorageUnavailable
from pyworkflow.engine.followups import (
    child_outcome_event,
    create_pending_run,
    final_run,
    new_pending_run,
)
from pyworkflow.engine.ids import new_run_id, nth_call_id
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.base import CommitBatch, DuplicateEventError, RunAlreadyExistsError
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun

MAX_NESTING_DEPTH = 3


def child_base_id(name: str, args_json: str, kwargs_json: str) -> str:
    """``child_<name>_<sha256(child:name:args:kwargs)[:16]>`` (upstream's child id)."""
    digest = hashlib.sha256(f"child:{name}:{args_json}:{kwargs_json}".encode()).hexdigest()
    return f"child_{name}_{digest[:16]}"


@dataclass
class ChildSpec:
    """What a ``start_child_workflow`` call asked for."""

    name: str
    args_json: str
    kwargs_json: str
    wait: bool = True
    max_duration: str | None = None
    recover_on_worker_loss: bool = True
    max_recovery_attempts: int = 3


@dataclass(frozen=True)
class ChildRef:
    """A started child: what a handle needs."""

    child_id: str
    child_run_id: str
    name: str
    parent_run_id: str


def outcome_value(outcome: dict[str, Any], name: str) -> Any:
    """The child's result, or raise ``ChildWorkflowFailedError`` for its failure."""
    run_id = str(outcome.get("child_run_id"))
    kind = outcome.get("outcome")
    if kind == "completed":
        raw = outcome.get("result")
        return deserialize(raw) if isinstance(raw, str) else raw
    if kind == "cancelled":
        reason = outcome.get("reason")
        raise ChildWorkflowFailedError(run_id, name, f"Cancelled: {reason}", "CancellationError")
    raise ChildWorkflowFailedError(
        run_id, name, str(outcome.get("error")), str(outcome.get("error_type") or "Exception")
    )


async def durable_child(act: Activation, spec: ChildSpec) -> Any:
    """The durable child call: the result (waiting), a :class:`ChildRef` (not
    waiting), a raised child failure, or a suspension until the child ends."""
    base = child_base_id(spec.name, spec.args_json, spec.kwargs_json)
    child_id = nth_call_id(base, act.nth_call(base))
    position = act.begin_call("child", spec.name, child_id)
    state = act.state
    started = state.children_started.get(child_id)
    if started is None:
        act.check_cancellation()
        if act.nesting_depth >= MAX_NESTING_DEPTH:
            raise MaxNestingDepthError(act.nesting_depth)
        act.validate_event_limits()
        # Tracked like an inline step: if a sibling suspends the run meanwhile, the
        # activation still waits for this start to be recorded, created and launched.
        done = act.track()
        try:
            started = await _record_start(act, spec, child_id, position)
            await _create_and_launch(act, spec, started)
        finally:
            done.set_result(None)
    elif child_id not in state.child_outcomes:
        await _check_on_child(act, started, spec)
    ref = ChildRef(child_id, started["child_run_id"], spec.name, act.run_id)
    if not spec.wait:
        return ref
    return await wait_for_child(act, child_id, spec.name, checked=True)


async def wait_for_child(
    act: Activation, child_id: str, name: str, *, checked: bool = False
) -> Any:
    """The child's result (or failure); until it ends, the run suspends durably.

    Used by awaited child calls and by ``ChildWorkflowHandle.result()`` inside the
    parent, which then waits without holding a worker."""
    state = act.state
    started = state.children_started.get(child_id)
    if not checked and started is not None and child_id not in state.child_outcomes:
        await _check_on_child(act, started, None)
    outcome = state.child_outcomes.get(child_id)
    if outcome is not None:
        return outcome_value(outcome, name)
    act.check_cancellation()
    # Let siblings of an asyncio.gather whose outcomes are recorded (a failed child)
    # raise first: otherwise this suspension would win and the parent would wait for
    # this child before seeing a failure it already has.
    for _ in range(3):
        await asyncio.sleep(0)
    raise SuspensionSignal(f"child_workflow:{child_id}", child_id=child_id)


async def _record_start(
    act: Activation, spec: ChildSpec, child_id: str, position: int
) -> dict[str, Any]:
    event = ev.create_child_workflow_started_event(
        act.run_id,
        child_id,
        new_run_id(),
        spec.name,
        spec.args_json,
        spec.kwargs_json,
        spec.wait,
    )
    event.data["position"] = position
    await act.commit([event])
    return event.data


def _child_record(act: Activation, spec: ChildSpec, child_run_id: str) -> WorkflowRun:
    run = new_pending_run(
        child_run_id, spec.name, spec.args_json, spec.kwargs_json, spec.max_duration
    )
    run.parent_run_id = act.run_id
    run.nesting_depth = act.nesting_depth + 1
    run.recover_on_worker_loss = spec.recover_on_worker_loss
    run.max_recovery_attempts = spec.max_recovery_attempts
    return run


async def _create_and_launch(act: Activation, spec: ChildSpec, started: dict[str, Any]) -> None:
    """Create the child run (if missing) and have the runtime start it."""
    child_run_id = started["child_run_id"]
    with _storage_errors(act), contextlib.suppress(RunAlreadyExistsError):
        await create_pending_run(act.storage, _child_record(act, spec, child_run_id))
    if act.launch is not None:
        await act.launch(child_run_id, spec.wait)
    if spec.wait:
        # An inline launch may have finished the child already.
        await act.refresh()


async def _check_on_child(act: Activation, started: dict[str, Any], spec: ChildSpec | None) -> None:
    """Replay of a child without a recorded outcome: repair what a crash or a lost
    message may have left (a missing child run, an unrecorded outcome)."""
    child_run_id = started["child_run_id"]
    with _storage_errors(act):
        child = await act.storage.get_run(child_run_id)
        last = await final_run(act.storage, child) if child is not None else None
    if child is None:
        if spec is not None:
            await _create_and_launch(act, spec, started)
        return
    assert last is not None
    if last.status in TERMINAL_STATUSES and last.status is not RunStatus.CONTINUED_AS_NEW:
        with _storage_errors(act), contextlib.suppress(DuplicateEventError):
            event = await child_outcome_event(
                act.storage, act.run_id, started["child_id"], child_run_id, last
            )
            await act.storage.commit(CommitBatch(run_id=act.run_id, events=[event]))
        await act.refresh()


@contextlib.contextmanager
def _storage_errors(act: Activation) -> Iterator[None]:
    """A storage failure outside the activation's own commits: the activation stops
    and the run stays resumable (as in ``Activation.commit``), instead of the error
    reaching workflow code."""
    try:
        yield
    except (RunAlreadyExistsError, DuplicateEventError):
        raise
    except Exception as error:
        raise StorageUnavailable(act.run_id, error) from error
