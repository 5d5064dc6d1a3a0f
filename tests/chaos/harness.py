"""The fault-injection harness: scenarios as data, run, settled and checked.

A :class:`Scenario` names a workload (an async function that starts real processes
and injects faults through a :class:`Chaos` context), a seed and how many faults to
inject. :func:`run_scenario` runs it in a fresh directory, waits until every run
has ended (or the settle time is up), stops every process it started, then checks,
from storage alone, the invariants of :mod:`pyworkflow.testing.invariants` and the
side-effect counters the step bodies wrote. The result is one row of the chaos
table: ``{scenario, runs, faults, lost, duplicates, violations}``.

Side-effect counters (``effects.log``, see :mod:`tests.chaos.effects`, re-exported
here) say how often each step body ran and which execution's result was recorded;
another execution of a step is allowed only if its process was SIGKILLed or it ran
during a storage outage.

Example::

    result = await run_scenario(Scenario("sigkill", seed=7, workload=sigkill_workers,
                                         faults=6), tmp_path)
    assert result.ok, result.summary()
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES
from pyworkflow.testing.invariants import Violation, check_invariants
from tests.chaos.effects import (
    EFFECTS,
    Execution,
    read_effects,
    recorded_nonces,
    rerun_note,
    side_effect_violations,
)
from tests.support import kill_tree, process_alive

__all__ = [
    "EFFECTS",
    "Chaos",
    "ChaosResult",
    "Execution",
    "Scenario",
    "read_effects",
    "recorded_nonces",
    "run_scenario",
    "scaled",
    "side_effect_violations",
    "slow_storage_class",
]

ROOT = Path(__file__).resolve().parents[2]
DUPLICATE_KINDS = frozenset(
    {
        "duplicate_step_completed",
        "duplicate_terminal_event",
        "duplicate_event",
        "duplicate_completion",
        "duplicate_side_effect",
    }
)
LOST_KINDS = frozenset({"stranded", "missing_run", "unfinished"})


def scale() -> float:
    """``PYWORKFLOW_CHAOS_SCALE`` (default 1): multiplies run counts and faults."""
    return float(os.environ.get("PYWORKFLOW_CHAOS_SCALE", "1"))


def scaled(n: int) -> int:
    """``n`` times :func:`scale`, at least 1."""
    return max(1, round(n * scale()))


@dataclass
class ChaosResult:
    """The outcome of one scenario: a row of the chaos table plus the details."""

    scenario: str
    seed: int
    runs: int
    faults: int
    violations: list[Violation]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Runs neither ended nor resumable (or that never ended while workers ran)."""
        return len({v.run_id for v in self.violations if v.kind in LOST_KINDS})

    @property
    def duplicates(self) -> int:
        """Outcomes recorded twice, and step bodies that ran twice without a kill."""
        return sum(1 for v in self.violations if v.kind in DUPLICATE_KINDS)

    @property
    def ok(self) -> bool:
        return not self.violations

    def row(self) -> dict[str, Any]:
        """``{scenario, runs, faults, lost, duplicates, violations}``."""
        return {
            "scenario": self.scenario,
            "runs": self.runs,
            "faults": self.faults,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "violations": len(self.violations),
        }

    def summary(self) -> str:
        """The row, the seed to replay it with, notes, then each violation."""
        lines = [f"{self.row()} seed={self.seed} ({self.seconds:.1f}s)"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  {v.kind} {v.run_id}: {v.detail}" for v in self.violations[:40]]
        return "\n".join(lines)


class Chaos:
    """What a workload gets: the seeded random source, the scenario's directory and
    storage, and helpers to start, kill and restart processes and count faults."""

    def __init__(self, name: str, seed: int, workdir: Path, storage_spec: str) -> None:
        self.name = name
        self.seed = seed
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.storage_spec = storage_spec
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()
        # (from, to) unix times when storage could not record anything (a full disk).
        self.outages: list[tuple[float, float]] = []
        self.faults = 0
        self.queued_run_ids: set[str] = set()
        self.violations: list[Violation] = []
        self.notes: list[str] = []
        self.exclude_runs: set[str] = set()  # runs a scenario damaged on purpose
        # When set, only these runs are waited for and checked (a storage that cannot
        # list its runs, e.g. with a corrupt record, is asked about each one).
        self.run_ids: list[str] | None = None
        self.planned = 0  # how many faults the scenario asks for
        self.env: dict[str, str] = {}

    # ------------------------------------------------------------------ processes

    def process_env(self) -> dict[str, str]:
        env = dict(os.environ, CHAOS_DIR=str(self.workdir), **self.env)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        # Short leases: a killed activation's run is taken over within seconds.
        env.setdefault("PYWORKFLOW_LEASE_SECONDS", "1.5")
        return env

    def spawn(self, role: str, *args: str, storage: str | None = None) -> subprocess.Popen[bytes]:
        """Start ``python -m tests.chaos.local_app <args[0]> STORAGE <args[1:]>`` as
        ``role`` (replacing a dead process of that role); output goes to a log."""
        command, rest = args[0], args[1:]
        log = (self.workdir / f"{role}.log").open("ab")
        app = [sys.executable, "-m", "tests.chaos.local_app"]
        proc = subprocess.Popen(
            [*app, command, storage or self.storage_spec, *rest],
            env=self.process_env(),
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs[role] = proc
        return proc

    def kill(self, role: str, *, fault: bool = True) -> bool:
        """SIGKILL the process of ``role`` (counted as a fault unless ``fault`` is
        False); False if it was not running."""
        proc = self.procs.get(role)
        if proc is None or proc.poll() is not None:
            return False
        self.killed.add(proc.pid)  # its step executions may be repeated
        kill_tree(proc.pid)
        proc.wait(timeout=10)
        self.faults += int(fault)
        return True

    def alive(self, role: str) -> bool:
        proc = self.procs.get(role)
        return proc is not None and proc.poll() is None and process_alive(proc.pid)

    def stop_all(self) -> None:
        """End every process the scenario started (not a fault: the scenario is over)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)

    async def kill_at_random(
        self, roles: list[str], kills: int, window: float, restart: Callable[[str], None]
    ) -> None:
        """``kills`` SIGKILLs at seeded random moments within ``window`` seconds, each
        of a random role that is running, which is then restarted by ``restart``."""
        moments = sorted(self.rng.uniform(0.2, window) for _ in range(kills))
        began = time.monotonic()
        for moment in moments:
            await asyncio.sleep(max(0.0, began + moment - time.monotonic()))
            live = [r for r in roles if self.alive(r)]
            if not live:
                continue
            role = self.rng.choice(live)
            if self.kill(role):
                restart(role)

    # ------------------------------------------------------------------ storage

    def open_storage(self, spec: str | None = None) -> StorageBackend:
        from tests.chaos.local_app import open_storage

        return open_storage(spec or self.storage_spec)

    async def wait_until_ended(self, storage: StorageBackend, timeout: float) -> list[str]:
        """Poll until every run has ended; returns those that have not."""
        deadline = time.monotonic() + timeout
        while True:
            left = await self.unfinished(storage)
            if not left or time.monotonic() >= deadline:
                return left
            await asyncio.sleep(0.2)

    async def checked_runs(self, storage: StorageBackend) -> list[str]:
        """The ids of the runs to check: ``run_ids`` if set, else every run."""
        if self.run_ids is not None:
            ids = self.run_ids
        else:
            ids = [r.run_id for r in await all_runs(storage)]
        return [rid for rid in ids if rid not in self.exclude_runs]

    async def unfinished(self, storage: StorageBackend) -> list[str]:
        left = []
        for run_id in await self.checked_runs(storage):
            run = await storage.get_run(run_id)
            if run is not None and run.status not in TERMINAL_STATUSES:
                left.append(run_id)
        return left


async def all_runs(storage: StorageBackend) -> list[Any]:
    """Every run of ``storage`` (all pages of ``list_runs``)."""
    runs: list[Any] = []
    cursor: str | None = None
    while True:
        page, cursor = await storage.list_runs(limit=500, cursor=cursor)
        runs += page
        if cursor is None or not page:
            return runs


Workload = Callable[[Chaos], Awaitable[None]]

_SLOW_METHODS = sorted(
    name
    for name, member in vars(StorageBackend).items()
    if inspect.iscoroutinefunction(member) and not name.startswith("_") and name != "connect"
)


_LATENCY = random.Random()


def slow_storage_class(base: type[StorageBackend], low: float = 0.001, high: float = 0.03) -> type:
    """A subclass of the real backend ``base`` whose every storage call waits a random
    ``low``..``high`` seconds before and after doing the real work ("slow storage":
    a far or overloaded database). Instances draw delays from ``latency_rng``.

    Example::

        SlowSQLite = slow_storage_class(SQLiteStorageBackend)
        store = SlowSQLite("chaos.db")
    """

    def slowed(name: str) -> Callable[..., Awaitable[Any]]:
        async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            rng: random.Random = getattr(self, "latency_rng", None) or _LATENCY
            await asyncio.sleep(rng.uniform(low, high) / 2)
            result = await getattr(super(cls, self), name)(*args, **kwargs)
            await asyncio.sleep(rng.uniform(low, high) / 2)
            return result

        call.__name__ = name
        return call

    cls = type(f"Slow{base.__name__}", (base,), {n: slowed(n) for n in _SLOW_METHODS})
    return cls


@dataclass
class Scenario:
    """One chaos scenario, as data.

    ``workload`` starts processes and injects ``faults`` faults (it reads the count
    from the :class:`Chaos` it gets as ``chaos.planned``); ``setup`` prepares the
    directory first. After the workload, the harness waits up to ``settle``
    seconds for every run to end (the workload leaves the processes that finish them
    running), stops every process, calls ``after`` (scenario-specific checks that add
    to ``chaos.violations``), checks the invariants, then calls ``teardown``.
    """

    name: str
    seed: int
    workload: Workload
    faults: int = 0
    storage: str = "sqlite"
    setup: Workload | None = None
    settle: float = 60.0
    after: Workload | None = None
    teardown: Workload | None = None


def storage_spec(kind: str, workdir: Path) -> str:
    """The storage spec of a scenario: ``sqlite:<dir>/chaos.db`` or ``file:<dir>/files``."""
    if kind == "sqlite":
        return f"sqlite:{workdir / 'chaos.db'}"
    if kind == "file":
        return f"file:{workdir / 'files'}"
    return kind  # already a spec (e.g. a path on a small filesystem)


async def run_scenario(scenario: Scenario, workdir: Path) -> ChaosResult:
    """Run, settle, stop and check one scenario in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    chaos = Chaos(scenario.name, scenario.seed, workdir, storage_spec(scenario.storage, workdir))
    chaos.planned = scenario.faults
    try:
        try:
            if scenario.setup is not None:
                await scenario.setup(chaos)
            await scenario.workload(chaos)
            store = chaos.open_storage()
            await store.connect()
            try:
                unfinished = await chaos.wait_until_ended(store, scenario.settle)
            finally:
                await store.disconnect()
        finally:
            chaos.stop_all()
        if scenario.after is not None:
            await scenario.after(chaos)
        result = await check_scenario(chaos, unfinished)
    finally:
        if scenario.teardown is not None:
            await scenario.teardown(chaos)
    result.seconds = time.monotonic() - began
    return result


async def check_scenario(chaos: Chaos, unfinished: list[str] | None = None) -> ChaosResult:
    """Invariants, unfinished runs and side effects, from storage and counter files."""
    store = chaos.open_storage()
    await store.connect()
    try:
        runs = await chaos.checked_runs(store)
        only = runs if chaos.run_ids is not None or chaos.exclude_runs else None
        report = await check_invariants(store, run_ids=only, queued_run_ids=chaos.queued_run_ids)
        if unfinished is None:
            unfinished = await chaos.unfinished(store)
        recorded = await recorded_nonces(store, runs)
    finally:
        await store.disconnect()
    violations = list(chaos.violations) + report.violations
    stuck = "had not ended when the workers were stopped"
    violations += [Violation("unfinished", rid, stuck) for rid in unfinished]
    executions = [
        ex
        for ex in read_effects(chaos.workdir / EFFECTS)
        if ex.key.split(":", 1)[0] not in chaos.exclude_runs
    ]
    violations += side_effect_violations(executions, recorded, chaos.killed, chaos.outages)
    notes = [*chaos.notes, report.summary().splitlines()[0], rerun_note(executions, recorded)]
    return ChaosResult(chaos.name, chaos.seed, report.runs, chaos.faults, violations, notes=notes)
