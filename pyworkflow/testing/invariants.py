"""Invariants every storage must satisfy after any crash, checked from storage alone.

The fault-injection harness (``tests/chaos``) runs a scenario, lets it settle, then
asks this module whether the guarantees of the engine still hold:

* every run's events are numbered ``0..n-1`` with no gap or repeat;
* no de-duplicated outcome is recorded twice (a step id has at most one
  ``step.completed``, a run at most one terminal event, a hook at most one outcome);
* a run's status is terminal exactly when its log ends with the matching terminal
  event, and nothing is appended after that event;
* every run that has not ended is *resumable*: a timer, a pending hook, a queued
  task (``queued_run_ids``), an unfinished child, or — for a RUNNING run — a lease
  that is expired, absent or bound to expire (the stale-run scan takes it) points at
  it;
* no timer is left on a run that ended (except its ``followup`` timer, which is how
  the work an ended run owes other runs survives a crash) or on a run that does not
  exist, and no hook is still PENDING on an ended run.

:func:`check_side_effects` compares counters written by step bodies with the
recorded completions: each completed step's body ran once, unless its worker died
inside it.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> report = asyncio.run(check_invariants(InMemoryStorageBackend()))
    >>> report.ok, report.summary()
    (True, 'runs=0 terminal=0 resumable=0 violations=0')
"""

from __future__ import annotations

import collections
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyworkflow.engine.event_model import TERMINAL_KEY, Event, EventType, dedup_key
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import (
    TERMINAL_STATUSES,
    Hook,
    HookStatus,
    RunStatus,
    Timer,
    WorkflowRun,
)

__all__ = ["InvariantReport", "Violation", "check_invariants", "check_side_effects"]

_TERMINAL_EVENT = {
    EventType.WORKFLOW_COMPLETED: RunStatus.COMPLETED,
    EventType.WORKFLOW_FAILED: RunStatus.FAILED,
    EventType.WORKFLOW_CANCELLED: RunStatus.CANCELLED,
    EventType.WORKFLOW_CONTINUED_AS_NEW: RunStatus.CONTINUED_AS_NEW,
}
# Timers that legitimately outlive their run: a followup timer makes sure an ended
# run's work for other runs happens; a schedule timer belongs to a schedule id.
_ALLOWED_AFTER_END = {"followup"}
_SCHEDULE_KIND = "schedule"


@dataclass
class Violation:
    """One broken invariant: its ``kind``, the run it concerns and what was seen.

    Example:
        >>> Violation("sequence_gap", "run_1", "sequences [0, 2]")
        Violation(kind='sequence_gap', run_id='run_1', detail='sequences [0, 2]')
    """

    kind: str
    run_id: str
    detail: str


@dataclass
class InvariantReport:
    """What :func:`check_invariants` found.

    ``resumable`` counts the non-terminal runs that something will resume;
    ``resumable_by`` says what (``timer``, ``hook``, ``queued``, ``child``,
    ``stale`` for a RUNNING run without a live lease, ``leased`` for one whose
    lease is live and will expire).

    Example:
        >>> r = InvariantReport(runs=2, terminal=1, resumable=1, violations=[],
        ...                     resumable_by={"timer": 1})
        >>> r.ok, r.summary()
        (True, 'runs=2 terminal=1 resumable=1 (timer=1) violations=0')
        >>> bad = InvariantReport(1, 0, 0, [Violation("stranded", "run_1", "suspended")])
        >>> bad.ok
        False
        >>> print(bad.summary())
        runs=1 terminal=0 resumable=0 violations=1
          stranded run_1: suspended
    """

    runs: int
    terminal: int
    resumable: int
    violations: list[Violation]
    resumable_by: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no invariant is broken."""
        return not self.violations

    def summary(self) -> str:
        """One line of counts, then one indented line per violation."""
        by = ", ".join(f"{k}={v}" for k, v in sorted(self.resumable_by.items()))
        head = f"runs={self.runs} terminal={self.terminal} resumable={self.resumable}"
        head += f" ({by})" if by else ""
        lines = [f"{head} violations={len(self.violations)}"]
        lines += [f"  {v.kind} {v.run_id}: {v.detail}" for v in self.violations]
        return "\n".join(lines)


async def _all_runs(storage: StorageBackend) -> list[WorkflowRun]:
    runs: list[WorkflowRun] = []
    cursor: str | None = None
    while True:
        page, cursor = await storage.list_runs(limit=500, cursor=cursor)
        runs += page
        if cursor is None or not page:
            return runs


async def _all_hooks(storage: StorageBackend, run_id: str) -> list[Hook]:
    hooks: list[Hook] = []
    while True:
        page = await storage.list_hooks(run_id=run_id, limit=500, offset=len(hooks))
        hooks += page
        if len(page) < 500:
            return hooks


def check_log(run: WorkflowRun, events: list[Event]) -> list[Violation]:
    """The log-only invariants of one run: gap-free sequences, no duplicated
    outcome, status and terminal event in agreement, nothing after the end.

    Example:
        >>> from pyworkflow.engine.events import create_workflow_started_event as started
        >>> run = WorkflowRun("r", "wf", RunStatus.COMPLETED)
        >>> e = started("r", "wf", "[]", "{}")
        >>> e.sequence = 0
        >>> [v.kind for v in check_log(run, [e])]
        ['status_without_terminal_event']
    """
    rid = run.run_id
    found: list[Violation] = []
    seqs = [e.sequence for e in events]
    if seqs != list(range(len(events))):
        found.append(Violation("sequence_gap", rid, f"sequences {_compact(seqs)}"))
    seen: dict[str, list[int | None]] = collections.defaultdict(list)
    for e in events:
        key = dedup_key(e)
        if key is not None:
            seen[key].append(e.sequence)
    for key, at in seen.items():
        if len(at) > 1:
            found.append(Violation(_duplicate_kind(key), rid, f"{key} at sequences {at}"))
    found += _terminal_agreement(run, events)
    return found


def _duplicate_kind(key: str) -> str:
    if key == TERMINAL_KEY:
        return "duplicate_terminal_event"
    return "duplicate_step_completed" if key.startswith("step.outcome:") else "duplicate_event"


def _terminal_agreement(run: WorkflowRun, events: list[Event]) -> list[Violation]:
    rid = run.run_id
    ends = [e for e in events if e.type in _TERMINAL_EVENT]
    ended = run.status in TERMINAL_STATUSES
    if not ends:
        if ended:
            detail = f"status {run.status.value} but the log has no terminal event"
            return [Violation("status_without_terminal_event", rid, detail)]
        return []
    first = ends[0]
    found: list[Violation] = []
    if _TERMINAL_EVENT[first.type] is not run.status:
        detail = f"log ends with {first.type.value} (seq {first.sequence}) but status is "
        found.append(Violation("status_mismatch", rid, detail + run.status.value))
    after = [e for e in events if (e.sequence or 0) > (first.sequence or 0)]
    if after:
        kinds = sorted({e.type.value for e in after})
        detail = f"{len(after)} event(s) after {first.type.value}: {kinds}"
        found.append(Violation("event_after_terminal", rid, detail))
    return found


def _compact(seqs: list[int | None]) -> str:
    return str(seqs) if len(seqs) <= 12 else f"{seqs[:6]}...{seqs[-6:]} (n={len(seqs)})"


async def _resumed_by(
    storage: StorageBackend,
    run: WorkflowRun,
    timers: list[Timer],
    hooks: list[Hook],
    queued: Collection[str],
    now: datetime,
) -> str | None:
    """What will advance a run that has not ended, or None if nothing will."""
    if timers:
        return "timer"
    if any(h.status is HookStatus.PENDING for h in hooks):
        return "hook"
    if run.run_id in queued:
        return "queued"
    if run.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
        # The stale-run scan (list_stale_runs) picks these runs once their lease is gone
        # or expired; a live lease expires unless its holder keeps renewing it.
        lease = await storage.get_run_lease(run.run_id)
        return "stale" if lease is None or lease.expires_at <= now else "leased"
    for child in await storage.get_children(run.run_id):
        if child.status not in TERMINAL_STATUSES:
            return "child"  # its end wakes this run
        if any(t.kind == "followup" for t in await storage.list_timers(child.run_id)):
            return "child"  # its follow-up, still owed, wakes this run
    return None


async def check_invariants(
    storage: StorageBackend,
    *,
    run_ids: Iterable[str] | None = None,
    queued_run_ids: Collection[str] = (),
) -> InvariantReport:
    """Check every run of ``storage`` (or only ``run_ids``) against the invariants.

    ``queued_run_ids`` are runs a queued task will resume (e.g. read from a Celery
    broker); they count as resumable. Orphaned timers are looked for among all
    timers when ``run_ids`` is None, else among those of the given runs.

    Example:
        >>> import asyncio
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     await store.create_run(WorkflowRun("run_1", "wf", RunStatus.SUSPENDED))
        ...     return await check_invariants(store)
        >>> print(asyncio.run(main()).summary())
        runs=1 terminal=0 resumable=0 violations=1
          stranded run_1: suspended; no timer, pending hook, queued task, child or lease
    """
    now = datetime.now(UTC)
    if run_ids is None:
        runs = await _all_runs(storage)
        all_timers = await storage.list_timers()
    else:
        fetched = [await storage.get_run(rid) for rid in dict.fromkeys(run_ids)]
        runs = [r for r in fetched if r is not None]
        missing = [rid for rid, r in zip(dict.fromkeys(run_ids), fetched, strict=True) if not r]
        all_timers = [t for r in runs for t in await storage.list_timers(r.run_id)]
    report = InvariantReport(runs=len(runs), terminal=0, resumable=0, violations=[])
    if run_ids is not None:
        report.violations += [Violation("missing_run", rid, "no such run") for rid in missing]
    timers_of: dict[str, list[Timer]] = collections.defaultdict(list)
    for timer in all_timers:
        timers_of[timer.run_id].append(timer)
    for run in runs:
        await _check_run(storage, run, timers_of.get(run.run_id, []), queued_run_ids, now, report)
    report.violations += await _orphans(storage, {r.run_id for r in runs}, timers_of, run_ids)
    return report


async def _check_run(
    storage: StorageBackend,
    run: WorkflowRun,
    timers: list[Timer],
    queued: Collection[str],
    now: datetime,
    report: InvariantReport,
) -> None:
    events = await storage.get_events(run.run_id)
    report.violations += check_log(run, events)
    hooks = await _all_hooks(storage, run.run_id)
    if run.status in TERMINAL_STATUSES:
        report.terminal += 1
        for hook in hooks:
            if hook.status is HookStatus.PENDING:
                detail = f"hook {hook.hook_id} still pending after the run {run.status.value}"
                report.violations.append(Violation("pending_hook_after_end", run.run_id, detail))
        for timer in timers:
            if timer.kind not in _ALLOWED_AFTER_END:
                detail = f"timer {timer.timer_id} left on a {run.status.value} run"
                report.violations.append(Violation("orphan_timer", run.run_id, detail))
        return
    by = await _resumed_by(storage, run, timers, hooks, queued, now)
    if by is None:
        detail = f"{run.status.value}; no timer, pending hook, queued task, child or lease"
        report.violations.append(Violation("stranded", run.run_id, detail))
        return
    report.resumable += 1
    report.resumable_by[by] = report.resumable_by.get(by, 0) + 1


async def _orphans(
    storage: StorageBackend,
    known: set[str],
    timers_of: Mapping[str, list[Timer]],
    run_ids: Iterable[str] | None,
) -> list[Violation]:
    """Timers that point at no run (a schedule timer must point at a live schedule)."""
    if run_ids is not None:
        return []
    found: list[Violation] = []
    for owner_id, timers in timers_of.items():
        if owner_id in known:
            continue
        for timer in timers:
            if timer.kind == _SCHEDULE_KIND:
                schedule = await storage.get_schedule(owner_id)
                if schedule is not None and schedule.status.value != "deleted":
                    continue
            detail = f"timer {timer.timer_id} points at no run"
            found.append(Violation("orphan_timer", owner_id, detail))
    return found


def check_side_effects(
    counts: Mapping[str, int],
    completed: Mapping[str, int],
    died_inside: Collection[str] = (),
) -> list[Violation]:
    """Compare how often each step body ran with how often its result was recorded.

    ``counts`` and ``completed`` are keyed by one key per step call (e.g.
    ``"<run_id>:<step_id>"``). A completed step's body must have run exactly once;
    each time its key appears in ``died_inside`` (a worker was killed inside the
    body, or after it but before the result was recorded) allows one more run. A
    result recorded twice, or recorded for a body that never ran, is a violation.
    The ``run_id`` of a violation is the part of the key before the first ``:``.

    Example:
        >>> check_side_effects({"r1:s1": 1, "r1:s2": 2}, {"r1:s1": 1, "r1:s2": 1}, ["r1:s2"])
        []
        >>> [v.kind for v in check_side_effects({"r1:s1": 2}, {"r1:s1": 1})]
        ['duplicate_side_effect']
        >>> [v.kind for v in check_side_effects({}, {"r1:s1": 2})]
        ['duplicate_completion', 'missing_side_effect']
    """
    allowance = collections.Counter(died_inside)
    found: list[Violation] = []
    for key in sorted(set(counts) | set(completed)):
        ran, done = counts.get(key, 0), completed.get(key, 0)
        rid = key.split(":", 1)[0]
        if done > 1:
            found.append(Violation("duplicate_completion", rid, f"{key} completed {done} times"))
        if done and ran == 0:
            found.append(Violation("missing_side_effect", rid, f"{key} completed, body never ran"))
        if ran > 1 + allowance[key]:
            detail = f"{key} body ran {ran} times, {allowance[key]} kill(s) inside it"
            found.append(Violation("duplicate_side_effect", rid, detail))
    return found
