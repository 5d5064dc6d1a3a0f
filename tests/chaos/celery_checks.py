"""Runs and checks of the Celery chaos scenarios: a batch of ``chaos_celery_mixed`` runs
started in a :class:`~tests.chaos.celery_world.World`, fault points tied to its
progress, and, once its runs have ended, the checks of every iteration (outcomes,
invariants, side-effect counters, processes that died by themselves) into an
:class:`Outcome`, which becomes a row of the chaos table.

Example::

    out, batch = Outcome("celery_sigkill", seed), Batch("tag")
    await launch(world, batch, 8)
    await when_bodies(world, batch.run_ids, 20)   # 20 step bodies have begun
    ...                                           # inject a fault
    await verify(world, out, batch.run_ids, batch.expected())
    assert out.result().ok, out.result().summary()
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyworkflow import start
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun
from pyworkflow.testing.invariants import Violation, check_invariants, check_side_effects
from tests.chaos import celery_app
from tests.chaos.celery_app import redispatches
from tests.chaos.celery_world import World
from tests.chaos.harness import ChaosResult, recorded_nonces


@dataclass
class Outcome:
    """What one iteration of a scenario did and found; :meth:`result` makes it a row of
    the chaos table (:class:`~tests.chaos.harness.ChaosResult`)."""

    scenario: str
    seed: int
    runs: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    #: Free-form lines for the report, e.g. the state of runs that never ended.
    details: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def result(self) -> ChaosResult:
        """The harness's row: lost runs become ``unfinished`` violations."""
        stuck = "not terminal when the scenario's wait ended"
        violations = self.violations + [Violation("unfinished", r, stuck) for r in self.lost]
        notes = [f"faults {dict(self.faults)}", f"counts {dict(self.notes)}", *self.details]
        notes.append(self.replay())
        seconds = time.monotonic() - self.began
        return ChaosResult(
            self.scenario,
            self.seed,
            self.runs,
            sum(self.faults.values()),
            violations,
            seconds,
            notes,
        )

    def replay(self) -> str:
        return (
            f"replay: python -m tests.chaos.soak --scenarios {self.scenario} "
            f"--seed {self.seed} --minutes 0"
        )


@dataclass
class Batch:
    """Runs of ``chaos_celery_mixed`` started by one iteration."""

    tag: str
    steps: int = 3
    seconds: float = 0.05
    pause: float = 1.0
    run_ids: list[str] = field(default_factory=list)

    @property
    def bodies(self) -> int:
        """Step bodies of the batch when nothing runs twice."""
        return len(self.run_ids) * (self.steps + 3)

    def expected(self) -> dict[str, str]:
        return dict.fromkeys(self.run_ids, celery_app.mixed_result(self.steps))


async def launch(world: World, batch: Batch, count: int) -> None:
    """Start ``count`` more runs at once (``start()`` records each run, then sends it)."""
    first = len(batch.run_ids)
    args = (batch.steps, batch.seconds, batch.pause)
    run_ids = await asyncio.gather(
        *(
            start(
                celery_app.mixed, f"{batch.tag}-{k}", *args, runtime="celery", storage=world.storage
            )
            for k in range(first, first + count)
        )
    )
    batch.run_ids += run_ids


def bodies_begun(world: World, run_ids: set[str]) -> int:
    """How many step bodies of these runs have begun."""
    return len(world.effects.refresh().of_runs(run_ids))


async def when_bodies(world: World, run_ids: list[str], count: int, timeout: float = 40) -> None:
    """Return once ``count`` bodies of the runs began (or after ``timeout``: a fault
    comes late rather than never)."""
    wanted, deadline = set(run_ids), time.monotonic() + timeout
    checked = time.monotonic()
    while bodies_begun(world, wanted) < count and time.monotonic() < deadline:
        if time.monotonic() - checked > 1:  # no progress will come from a dead topology
            if world.casualties():
                return
            checked = time.monotonic()
        await asyncio.sleep(0.02)


async def settle(
    world: World, run_ids: list[str], timeout: float
) -> tuple[dict[str, WorkflowRun], list[str]]:
    """Poll until every run is terminal; (the terminal runs, the ones that never were).
    Storage errors count as "not yet" (the database may still be coming back). A
    process that died by itself ends the wait: nothing restarts it."""
    done: dict[str, WorkflowRun] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(run_ids) and time.monotonic() < deadline:
        if world.casualties():
            break
        for run_id in [r for r in run_ids if r not in done]:
            try:
                run = await world.storage.get_run(run_id)
            except Exception:  # an outage: poll again
                await asyncio.sleep(0.5)
                break
            if run is not None and run.status in TERMINAL_STATUSES:
                done[run_id] = run
        await asyncio.sleep(0.2)
    return done, [r for r in run_ids if r not in done]


async def verify(
    world: World,
    out: Outcome,
    run_ids: list[str],
    expected: dict[str, str],
    raced: Counter[str] | None = None,
    timeout: float = 120,
) -> dict[str, WorkflowRun]:
    """Wait for the runs, then check outcomes, invariants and side effects into ``out``.

    ``expected`` maps run ids to their serialized result. A step body may have run
    more than once only by a killed process (it died inside the body or before its
    result was recorded), or (DISTRIBUTED.md) by a live one when the attempt was
    dispatched again by its watchdog or delivered twice at once (``raced``, per key)."""
    runs, out.lost = await settle(world, run_ids, timeout)
    out.runs += len(run_ids)
    out.details += [await describe_run(world, run_id) for run_id in out.lost[:5]]
    report = await check_invariants(world.storage, run_ids=run_ids)
    out.violations += report.violations + world.casualties()
    for run_id, run in runs.items():
        want = expected.get(run_id)
        if want is not None and (run.status, run.result) != (RunStatus.COMPLETED, want):
            detail = f"{run.status.value} result={run.result} error={run.error}; wanted {want}"
            out.violations.append(Violation("unexpected_outcome", run_id, detail))
    recorded = await recorded_nonces(world.storage, run_ids)
    extra = Counter(raced or {})
    for run_id in run_ids:
        extra += await redispatches(world.storage, run_id)
    out.violations += side_effects(world, set(run_ids), recorded, extra, out)
    return runs


async def describe_run(world: World, run_id: str) -> str:
    """What a run that never ended is waiting for: status, timers, lease, last events."""
    now = datetime.now(UTC)
    run = await world.storage.get_run(run_id)
    timers = [
        f"{t.kind}:{t.key} due {(t.fire_at - now).total_seconds():+.1f}s"
        + (f" claimed {(t.claimed_until - now).total_seconds():+.1f}s" if t.claimed_until else "")
        for t in await world.storage.list_timers(run_id)
    ]
    lease = await world.storage.get_run_lease(run_id)
    held = f"{lease.owner} {(lease.expires_at - now).total_seconds():+.1f}s" if lease else None
    events = await world.storage.get_events(run_id)
    tail = [f"{e.type.value}@{(e.timestamp - now).total_seconds():+.1f}s" for e in events[-4:]]
    status = run.status.value if run else "missing"
    return f"stuck {run_id}: {status} timers={timers} lease={held} last={tail}"


def side_effects(
    world: World,
    run_ids: set[str],
    recorded: dict[str, list[str | None]],
    extra: Counter[str],
    out: Outcome,
) -> list[Violation]:
    """:func:`check_side_effects` with the allowances of :func:`verify`; also, a
    recorded result must come from an execution that returned."""
    executions = world.effects.refresh().of_runs(run_ids)
    unrecorded = [ex for ex in executions if ex.nonce not in recorded.get(ex.key, [])]
    died = [ex.key for ex in unrecorded if ex.pid in world.killed]
    live = Counter(ex.key for ex in unrecorded if ex.pid not in world.killed)
    allowed = died + list((live & extra).elements())
    out.notes["bodies"] += len(executions)
    out.notes["reran_killed"] += len(died)
    out.notes["reran_allowed_live"] += len(allowed) - len(died)
    found = check_side_effects(
        Counter(ex.key for ex in executions), {k: len(v) for k, v in recorded.items()}, allowed
    )
    returned = {ex.nonce for ex in executions if ex.left}
    for key, nonces in recorded.items():
        for nonce in nonces:
            if nonce not in returned:
                detail = f"{key}: recorded result of execution {nonce}, which never returned"
                found.append(Violation("recorded_unknown_execution", key.split(":")[0], detail))
    return found
