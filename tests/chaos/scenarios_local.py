"""Local-runtime chaos scenarios: real processes on one SQLite file (or file storage).

Each ``*_scenario(seed)`` returns a :class:`~tests.chaos.harness.Scenario`; run it
with :func:`~tests.chaos.harness.run_scenario`. Sizes grow with
``PYWORKFLOW_CHAOS_SCALE`` (the soak sets it). ``LOCAL_SCENARIOS`` lists them all
for the soak (``tests/chaos/soak.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import tests.chaos.local_app  # noqa: F401  (registers the workflow before any test runs)
from pyworkflow.storage.schemas import Hook
from tests.chaos.harness import Chaos, Scenario, all_runs, scaled
from tests.chaos.scenarios_storage import (
    corrupt_file_record_scenario,
    full_disk_scenario,
    slow_storage_scenario,
)
from tests.support import eventually

WORKERS = ("worker-0", "worker-1")


# --------------------------------------------------------------------------- 1. SIGKILL


async def _sigkill_workload(chaos: Chaos) -> None:
    n = scaled(24)
    start_args = ("start", str(n), "r", "0.4")

    def restart(role: str) -> None:
        chaos.spawn(role, *(start_args if role == "starter" else ("worker",)))

    chaos.spawn("starter", *start_args)
    for role in WORKERS:
        chaos.spawn(role, "worker")
    # The starter needs ~0.1 s per run; kills are spread over that time and the
    # sleeps, retries and recoveries that follow it.
    window = 1.0 + 0.12 * n
    await chaos.kill_at_random(["starter", *WORKERS], chaos.planned, window, restart)
    await _wait_exit(chaos, "starter", timeout=30 + n)


async def _wait_exit(chaos: Chaos, role: str, timeout: float) -> None:
    """Bounded wait for a process that ends on its own (e.g. the starter)."""
    deadline = time.monotonic() + timeout
    while chaos.alive(role) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if chaos.alive(role):
        chaos.notes.append(f"{role} still running after {timeout:.0f}s")


def sigkill_scenario(seed: int) -> Scenario:
    """A pool of runs (steps, a sleep, a retried step) driven by a starter and two
    timer-service workers, SIGKILLed at seeded random moments and restarted."""
    return Scenario(
        "local_sigkill", seed, _sigkill_workload, faults=scaled(8), settle=30 + scaled(24)
    )


# --------------------------------------------------------------------------- 2. resumes


async def _concurrent_resumes_workload(chaos: Chaos) -> None:
    """Runs whose sleep is due, resumed at the same instant by three processes each;
    then hook payloads racing the hooks' expiry timers."""
    n = scaled(16)
    # Sleeps long enough that the starter has exited before the first one is due:
    # nobody resumes them until the racing processes do.
    nap = 1.0 + 0.15 * n
    chaos.spawn("starter", "start", str(n), "c", str(nap), str(HOOK_TIMEOUT))
    await _wait_exit(chaos, "starter", timeout=30 + n)
    run_ids = await _run_ids(chaos)
    chaos.run_ids = run_ids
    due = await _last_sleep_due(chaos)
    if due is None or due <= datetime.now(UTC):
        chaos.notes.append("some sleeps were due before the race began")
    await _race(chaos, "resume", run_ids, processes=3, at=due)
    for role in WORKERS:  # retries, then the hooks' expiry timers
        chaos.spawn(role, "worker")
    hooks = await _pending_hooks(chaos, run_ids)
    expiries = sorted(h.expires_at for h in hooks if h.expires_at is not None)
    # Deliver everything at the median deadline: some payloads come first, some
    # after the expiry, and some race the timer that expires them.
    median = expiries[len(expiries) // 2] if expiries else None
    await _race(chaos, "hooks", [h.token for h in hooks], processes=2, at=median)


HOOK_TIMEOUT = 2.0


async def _race(
    chaos: Chaos, command: str, ids: list[str], processes: int, at: datetime | None = None
) -> None:
    """Start ``processes`` processes running ``command`` on ``ids``, and release them
    together (at ``at``, or as soon as they are ready)."""
    go = chaos.workdir / f"go-{command}"
    roles = [f"{command}-{i}" for i in range(processes)]
    for role in roles:
        chaos.spawn(role, command, str(go), *ids)
    await asyncio.sleep(0.8)  # let them import and connect
    if at is not None:
        await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
    go.touch()
    for role in roles:
        await _wait_exit(chaos, role, timeout=60)


async def _run_ids(chaos: Chaos) -> list[str]:
    store = chaos.open_storage()
    await store.connect()
    try:
        return [r.run_id for r in await all_runs(store)]
    finally:
        await store.disconnect()


async def _last_sleep_due(chaos: Chaos) -> datetime | None:
    store = chaos.open_storage()
    await store.connect()
    try:
        due = [t.fire_at for t in await store.list_timers() if t.kind == "sleep"]
        return max(due) if due else None
    finally:
        await store.disconnect()


async def _pending_hooks(chaos: Chaos, run_ids: list[str]) -> list[Hook]:
    """Every run's hook, once each run has created it."""
    store = chaos.open_storage()
    await store.connect()
    try:

        async def hooks() -> list[Hook]:
            found = [h for rid in run_ids for h in await store.list_hooks(run_id=rid)]
            return found if len(found) == len(run_ids) else []

        return await eventually(hooks, timeout=30, message="not every run reached its hook")
    finally:
        await store.disconnect()


def concurrent_resumes_scenario(seed: int) -> Scenario:
    """Two kinds of racing deliveries: three processes resuming the same due runs at
    once, and hook payloads racing the hooks' expiry timers."""
    return Scenario("local_concurrent_resumes", seed, _concurrent_resumes_workload, settle=30)


LOCAL_SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "local_sigkill": sigkill_scenario,
    "local_concurrent_resumes": concurrent_resumes_scenario,
    "local_slow_storage": slow_storage_scenario,
    "local_full_disk": full_disk_scenario,
    "local_corrupt_file_record": corrupt_file_record_scenario,
}
"""Every local scenario by name: ``LOCAL_SCENARIOS[name](seed)``."""


def scenario_dir(base: Path, scenario: Scenario) -> Path:
    """A fresh directory for one scenario run under ``base``."""
    return base / f"{scenario.name}-{scenario.seed}"
