"""A corrupt file-storage record: one run's file is damaged while runs are going.

The file backend documents (pyworkflow/storage/file_io.py) that an unreadable record
raises :class:`~pyworkflow.storage.base.CorruptStorageError` naming the file and the
fix, and that a final log line without its newline is an append cut short by a crash
(ignored). The scenario damages one suspended run in one of these ways, chosen by the
seed, and expects:

* reading the damaged run raises that error, naming the file and the fix;
* every other run finishes, with the invariants holding;
* the damaged file is left as it is, and the run is not moved to another status
  ("repaired" into a state nobody recorded).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pyworkflow.storage.base import CorruptStorageError, StorageBackend
from pyworkflow.storage.schemas import RunStatus
from pyworkflow.testing.invariants import Violation
from tests.chaos.harness import Chaos, Scenario, all_runs, scaled

WORKERS = ("worker-0", "worker-1")
MODES = ("garbage_run_record", "truncated_run_record", "bad_event_line", "not_an_object")


def _files(chaos: Chaos) -> Path:
    return Path(chaos.storage_spec.partition(":")[2])


def damage(base: Path, run_id: str, mode: str) -> Path:
    """Damage one record of ``run_id`` under file storage ``base``; returns the file."""
    record = base / "runs" / f"{run_id}.json"
    log = base / "events" / f"{run_id}.jsonl"
    if mode == "garbage_run_record":
        record.write_bytes(b"\x00\x17garbage{{{")
        return record
    if mode == "truncated_run_record":
        text = record.read_bytes()
        record.write_bytes(text[: len(text) // 2])
        return record
    if mode == "not_an_object":
        record.write_bytes(b"[1, 2, 3]")
        return record
    lines = log.read_bytes().split(b"\n")
    lines[1] = b'{"run_id": "' + run_id.encode() + b'", "type": "step.comp'  # a torn line
    log.write_bytes(b"\n".join(lines))
    return log


async def _corrupt_workload(chaos: Chaos) -> None:
    n = scaled(12)
    chaos.spawn("starter", "start", str(n), "k", "2.0")
    for role in WORKERS:
        chaos.spawn(role, "worker")
    deadline = time.monotonic() + 30 + n
    while chaos.alive("starter") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    store = chaos.open_storage()
    await store.connect()
    try:
        runs = await all_runs(store)
    finally:
        await store.disconnect()
    chaos.run_ids = [r.run_id for r in runs]
    sleeping = sorted(r.run_id for r in runs if r.status is RunStatus.SUSPENDED)
    if not sleeping:
        chaos.violations.append(Violation("no_victim", "-", "no run was suspended"))
        return
    victim = chaos.rng.choice(sleeping)
    mode = chaos.rng.choice(MODES)
    path = damage(_files(chaos), victim, mode)
    chaos.exclude_runs.add(victim)
    chaos.corrupt = (victim, mode, path, path.read_bytes())  # type: ignore[attr-defined]
    chaos.faults += 1
    chaos.notes.append(f"damaged {path.name} of {victim} ({mode})")


async def _corrupt_after(chaos: Chaos) -> None:
    victim, mode, path, damaged = getattr(chaos, "corrupt", (None, "", Path(), b""))
    if victim is None:
        return
    if path.read_bytes() != damaged:
        detail = f"{path} was rewritten (mode {mode}): the damage was 'repaired' silently"
        chaos.violations.append(Violation("repaired_corrupt_record", victim, detail))
    _expect_timers_unaffected(chaos, victim)
    store = chaos.open_storage()
    await store.connect()
    try:
        await _expect_clear_error(chaos, store, victim, path)
        await _expect_untouched(chaos, store, victim, mode)
    finally:
        await store.disconnect()


def _expect_timers_unaffected(chaos: Chaos, victim: str) -> None:
    """One damaged run must not make the workers' timer service fail: its ticks fire
    the healthy runs' timers (a failed tick leaves the timers it claimed stuck)."""
    for log in sorted(chaos.workdir.glob("worker-*.log")):
        failed = [line for line in log.read_text().splitlines() if "Timer service error" in line]
        if failed:
            detail = f"{log.name}: {len(failed)} failed tick(s), e.g. {failed[0][:240]}"
            chaos.violations.append(Violation("timer_service_failed", victim, detail))


async def _expect_clear_error(chaos: Chaos, store: StorageBackend, victim: str, path: Path) -> None:
    try:
        await store.get_run(victim)
        await store.get_events(victim)
    except CorruptStorageError as error:
        text = str(error)
        if str(path) not in text or "backup" not in text:
            chaos.violations.append(Violation("unclear_corrupt_error", victim, text[:300]))
        return
    except Exception as error:
        detail = f"{type(error).__name__} instead of CorruptStorageError: {error}"[:300]
        chaos.violations.append(Violation("unclear_corrupt_error", victim, detail))
        return
    detail = f"reading the run with damaged {path.name} raised nothing"
    chaos.violations.append(Violation("corrupt_record_read_silently", victim, detail))


async def _expect_untouched(chaos: Chaos, store: StorageBackend, victim: str, mode: str) -> None:
    """A damaged log must not have let anyone move the run on (its row is readable)."""
    if mode != "bad_event_line":
        return
    run = await store.get_run(victim)
    if run is not None and run.status is not RunStatus.SUSPENDED:
        detail = f"run with a damaged log went from suspended to {run.status.value}"
        chaos.violations.append(Violation("corrupt_run_changed", victim, detail))


def corrupt_scenario(seed: int) -> Scenario:
    """File storage with one run's record or log damaged while the others go on."""
    return Scenario(
        "local_corrupt_file_record",
        seed,
        _corrupt_workload,
        storage="file",
        after=_corrupt_after,
        settle=30,
    )
