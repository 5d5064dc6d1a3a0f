"""The activation: one pass of a workflow function over its run's history.

Each durable call (step, sleep, hook, child) takes the next *position*. If the log
has an outcome for it, the call returns at once (fast-forward); if the log recorded
another call there, :class:`NondeterminismError` names both; otherwise the call does
its work and records it.

Writes go through :meth:`Activation.commit`, one storage transaction each, with the
last sequence this activation saw as the optimistic check. Bookkeeping events (a
sleep that completed, a started sleep) are buffered and ride along with the next
commit instead of costing one each. When another writer appended first (a hook
payload, a cancellation request), the new events are folded in and the commit is
retried: they never invalidate what this activation recorded, and the activation
sees them at its next durable call.

Example:
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> act = Activation("run_1", "wf", InMemoryStorageBackend(), RunState("run_1"))
    >>> act.next_position()
    1
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from pyworkflow.core.exceptions import (
    CancellationError,
    EventLimitExceededError,
    NondeterminismError,
)
from pyworkflow.engine import events as ev
from pyworkflow.engine.dispatch import StepCommand
from pyworkflow.engine.signals import (
    ActivationAborted,
    ActivationClosed,
    EventLimits,
    StorageUnavailable,
)
from pyworkflow.engine.state import CallRecord, RunState
from pyworkflow.storage.base import (
    CommitBatch,
    DuplicateEventError,
    HookUpdate,
    RunUpdate,
    SequenceConflictError,
    StorageBackend,
)
from pyworkflow.storage.schemas import Hook, Timer, make_timer_id

__all__ = [
    "Activation",
    "ActivationAborted",
    "ActivationClosed",
    "EventLimits",
    "StorageUnavailable",
    "utcnow",
]

_MAX_COMMIT_RETRIES = 50
_STEP_OUTCOMES = frozenset(
    {ev.EventType.STEP_COMPLETED, ev.EventType.STEP_FAILED, ev.EventType.STEP_RETRYING}
)
_HOOK_OUTCOMES = frozenset(
    {ev.EventType.HOOK_RECEIVED, ev.EventType.HOOK_EXPIRED, ev.EventType.HOOK_DISPOSED}
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Activation:
    """The durable-call machine behind a workflow context."""

    def __init__(
        self,
        run_id: str,
        workflow_name: str,
        storage: StorageBackend,
        state: RunState,
        *,
        lease_owner: str | None = None,
        limits: EventLimits | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.run_id = run_id
        self.workflow_name = workflow_name
        self.storage = storage
        self.state = state
        self.lease_owner = lease_owner
        self.limits = limits or EventLimits()
        self.now = clock
        self.closed = False
        self.cancellation_blocked = False
        self._position = 0
        self._counter = 0
        self._id_counts: dict[str, int] = {}
        self._pending_events: list[ev.Event] = []
        self._pending_upserts: dict[str, Timer] = {}
        self._pending_deletes: set[str] = set()
        self._pending_hooks: list[Hook] = []
        self._pending_hook_updates: dict[str, HookUpdate] = {}
        self._lock: asyncio.Lock | None = None
        self._inflight: set[asyncio.Future[None]] = set()
        self._tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._last_limit_warning: int | None = None
        # Dispatch mode (a list): step calls become commands for remote step workers.
        # Inline mode (None): step bodies run here.
        self.commands: list[StepCommand] | None = None
        # Events another writer appended that were folded in after the workflow code
        # had finished: the code never saw them, so the run must be activated again.
        self.merged_late = False
        # Set once replay diverged; the run fails with it even if user code catches it.
        self.poisoned: NondeterminismError | None = None
        # Where the run sits in a tree of child workflows (set by the runtime).
        self.nesting_depth = 0
        self.parent_run_id: str | None = None
        # Started by a schedule (or continuing such a run): its end is reported there.
        self.scheduled = False
        # How the runtime starts a child run created by this activation:
        # launch(child_run_id, wait) (see engine.children).
        self.launch: Callable[[str, bool], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ positions

    def next_position(self) -> int:
        """Take the next position (1-based) for a durable call."""
        self._position += 1
        return self._position

    def peek_position(self) -> int:
        """The position the next durable call will take."""
        return self._position + 1

    def next_counter(self) -> int:
        """The sleep/hook counter shared by both kinds (first call gives 1)."""
        self._counter += 1
        return self._counter

    def nth_call(self, base_id: str) -> int:
        """How many calls (including this one) share ``base_id`` in this run."""
        n = self._id_counts.get(base_id, 0) + 1
        self._id_counts[base_id] = n
        return n

    def begin_call(self, kind: str, name: str, call_id: str) -> int:
        """Enter a durable call: liveness, position and determinism checks."""
        if self.closed:
            raise ActivationClosed(f"{kind} '{name}' called after the activation ended")
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        position = self.next_position()
        recorded = self.state.calls.get(position)
        if recorded is not None and (recorded.kind != kind or recorded.call_id != call_id):
            current = CallRecord(kind, name, call_id)
            if recorded.kind == kind and recorded.name == name:
                current_text = f"{current.describe()} with different arguments"
            else:
                current_text = current.describe()
            self.poisoned = NondeterminismError(position, recorded.describe(), current_text)
            raise self.poisoned
        return position

    def unreached_calls(self) -> list[tuple[int, CallRecord]]:
        """Recorded calls at positions this activation never reached."""
        return sorted((p, c) for p, c in self.state.calls.items() if p > self._position)

    # ------------------------------------------------------------------ cancellation

    def check_cancellation(self) -> None:
        """Raise :class:`CancellationError` if cancellation was requested and not shielded.

        Durable calls check only when the log has no outcome for them (the frontier):
        replay returns what was recorded, so a run replays identically however late
        the request arrived.
        """
        if self.state.cancellation_requested and not self.cancellation_blocked:
            reason = self.state.cancellation_reason
            raise CancellationError.requested(reason)

    def note_cancellation(self, reason: str | None) -> None:
        """A running step saw a cancellation request (its event is folded in at the
        next commit); ``check_cancellation()`` reports it from now on."""
        self.state.cancellation_requested = True
        self.state.cancellation_reason = reason

    # ------------------------------------------------------------------ limits

    def event_count(self) -> int:
        """Events in the log plus those waiting to be committed."""
        return self.state.event_count + len(self._pending_events)

    def validate_event_limits(self) -> None:
        """Fail at the hard limit; warn past the soft limit every ``warning_interval``."""
        count = self.event_count()
        limits = self.limits
        if count >= limits.hard:
            raise EventLimitExceededError(self.run_id, count, limits.hard)
        if count >= limits.soft:
            last = self._last_limit_warning
            if last is None or count >= last + limits.warning_interval:
                self._last_limit_warning = count
                logger.warning(
                    "Workflow approaching event limit: {}/{}",
                    count,
                    limits.hard,
                    run_id=self.run_id,
                )

    # ------------------------------------------------------------------ writing

    def buffer(
        self,
        events: Iterable[ev.Event] = (),
        timers_upsert: Iterable[Timer] = (),
        timers_delete: Iterable[str] = (),
        hooks_create: Iterable[Hook] = (),
        hook_updates: Iterable[HookUpdate] = (),
    ) -> None:
        """Queue bookkeeping to ride along with the next commit."""
        self._pending_events.extend(events)
        self._pending_hooks.extend(hooks_create)
        for update in hook_updates:
            self._pending_hook_updates[update.hook_id] = update
        # Deletes first: re-arming a timer (same id) in the same call must win.
        for timer_id in timers_delete:
            self._pending_deletes.add(timer_id)
            self._pending_upserts.pop(timer_id, None)
        for timer in timers_upsert:
            self._pending_upserts[timer.timer_id] = timer
            self._pending_deletes.discard(timer.timer_id)

    async def commit(
        self,
        events: Iterable[ev.Event] = (),
        *,
        run_update: RunUpdate | None = None,
        timers_upsert: Iterable[Timer] = (),
        timers_delete: Iterable[str] = (),
        clear_timers: bool = False,
        hooks_create: Iterable[Hook] = (),
        hook_updates: Iterable[HookUpdate] = (),
    ) -> None:
        """Write buffered bookkeeping plus ``events`` in one transaction.

        Retries after folding in events another writer appended first; raises
        :class:`ActivationAborted` if one of them ended the run.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.buffer(events, timers_upsert, timers_delete, hooks_create, hook_updates)
            await self._commit_pending(run_update, clear_timers)

    async def _commit_pending(self, run_update: RunUpdate | None, clear_timers: bool) -> None:
        for _ in range(_MAX_COMMIT_RETRIES):
            batch = CommitBatch(
                run_id=self.run_id,
                events=list(self._pending_events),
                expected_sequence=self.state.last_sequence,
                run_update=run_update,
                timers_upsert=list(self._pending_upserts.values()),
                timers_delete=sorted(self._pending_deletes),
                clear_timers=clear_timers,
                hooks_create=list(self._pending_hooks),
                hook_updates=list(self._pending_hook_updates.values()),
            )
            try:
                await self.storage.commit(batch)
            except (SequenceConflictError, DuplicateEventError):
                await self._merge_new_events()
                continue
            except Exception as error:
                raise StorageUnavailable(self.run_id, error) from error
            for event in batch.events:
                self.state.apply(event)
            self._pending_events.clear()
            self._pending_upserts.clear()
            self._pending_deletes.clear()
            self._pending_hooks.clear()
            self._pending_hook_updates.clear()
            return
        raise RuntimeError(
            f"Run {self.run_id}: could not commit after {_MAX_COMMIT_RETRIES} attempts; "
            "another writer keeps appending to this run"
        )

    async def _merge_new_events(self) -> None:
        try:
            new = await self.storage.get_events_after(self.run_id, self.state.last_sequence)
        except Exception as error:
            raise StorageUnavailable(self.run_id, error) from error
        keys = {k for k in map(ev.dedup_key, new) if k is not None}
        if new and self.closed:
            self.merged_late = True
        if new:
            # The workflow code has not seen these events: the resume guard armed for
            # them must outlive this commit, so that a crash right after it still
            # leaves something that wakes the run.
            self._pending_deletes.discard(make_timer_id(self.run_id, "guard", "resume"))
        for event in new:
            self.state.apply(event)
        if self.state.terminal is not None:
            raise ActivationAborted(f"run reached {self.state.terminal.value} meanwhile")
        # Drop what another writer already recorded under the same key.
        self._pending_events = [e for e in self._pending_events if ev.dedup_key(e) not in keys]
        # A step outcome from a step worker ended that attempt: re-arming its watchdog
        # now would leave a timer nobody consumes.
        for event in new:
            if event.type in _STEP_OUTCOMES:
                timer_id = make_timer_id(self.run_id, "step", str(event.data.get("step_id")))
                self._pending_upserts.pop(timer_id, None)
            elif event.type in _HOOK_OUTCOMES:
                # The other writer settled the hook: our own verdict on it is void, and
                # so is re-arming its expiry timer.
                hook_id = str(event.data.get("hook_id"))
                self._pending_hook_updates.pop(hook_id, None)
                self._pending_upserts.pop(make_timer_id(self.run_id, "hook", hook_id), None)

    async def refresh(self) -> None:
        """Fold in events other writers appended (e.g. a child's outcome).

        The workflow code may not reach what it folds in (a sibling under
        ``asyncio.gather`` can suspend the run first), so a suspension after it is
        followed by one more activation, as for events merged late."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            before = self.state.last_sequence
            await self._merge_new_events()
            if self.state.last_sequence != before:
                self.merged_late = True

    # ------------------------------------------------------------------ in-flight work

    def track(self) -> asyncio.Future[None]:
        """Mark one piece of in-flight work (an inline step body); resolve it when done."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        return future

    async def drain(self) -> None:
        """Close the activation and wait for in-flight work; stop leftover tasks.

        Inline step bodies that are already running finish and commit their results
        (their side effects happened, so they must be recorded); leftover tasks stop
        at their next durable call or are cancelled.
        """
        # Let sibling tasks of an asyncio.gather that are ready to run reach their
        # durable calls (and register their commands) before the activation closes.
        for _ in range(3):
            await asyncio.sleep(0)
        self.closed = True
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        current = asyncio.current_task()
        leftovers = [t for t in self._tasks if t is not current and not t.done()]
        for task in leftovers:
            task.cancel()
        finished = [t for t in self._tasks if t is not current]
        if finished:
            # Retrieve every exception so asyncio does not log them as unhandled.
            await asyncio.gather(*finished, return_exceptions=True)
