"""Storage-fault scenarios of the local runtime: slow storage, a full disk, a corrupt
file-storage record. See :mod:`tests.chaos.scenarios_local` for the others."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import json
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyworkflow import start
from pyworkflow.runtime import timer_service
from pyworkflow.storage.base import StorageBackend
from pyworkflow.testing.invariants import Violation, check_invariants
from tests.chaos import local_app
from tests.chaos.harness import Chaos, Scenario, scaled
from tests.chaos.local_app import tune
from tests.support import eventually

WORKERS = ("worker-0", "worker-1")


def _workload() -> Any:
    """The workload workflow, registered now: a test run may have emptied the registry
    after this module was first imported (its decorators do not run twice)."""
    return importlib.reload(local_app).chaos_local


@contextlib.contextmanager
def effects_dir(path: Path) -> Iterator[None]:
    """Step bodies running in this process write their counters under ``path``."""
    old = os.environ.get("CHAOS_DIR")
    os.environ["CHAOS_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CHAOS_DIR", None)
        else:
            os.environ["CHAOS_DIR"] = old


async def stop_service(service: Any) -> None:
    """Stop a timer service for good (a resume in flight may restart it)."""
    for _ in range(50):
        await service.stop()
        if not service.running:
            return


async def _count_runs(chaos: Chaos, at_least: int, timeout: float, spec: str | None = None) -> None:
    store = chaos.open_storage(spec)
    await store.connect()
    try:
        await eventually(
            lambda: _has_runs(store, at_least), timeout=timeout, message="runs were not created"
        )
    finally:
        await store.disconnect()


async def _has_runs(store: StorageBackend, n: int) -> bool:
    runs, _ = await store.list_runs(limit=n)
    return len(runs) >= n


# --------------------------------------------------------------------------- 3. slow


async def _slow_workload(chaos: Chaos) -> None:
    """Many concurrent runs in this process on a slow SQLite (1-30 ms per call) with
    its timer service, plus two slow worker processes SIGKILLed at random moments."""
    n = scaled(30)
    spec = "slow" + chaos.storage_spec  # slowsqlite:<path>
    store = chaos.open_storage(spec)
    store.latency_rng = random.Random(chaos.seed)  # type: ignore[attr-defined]
    await store.connect()
    try:
        with effects_dir(chaos.workdir):
            service = timer_service(store)
            tune(service)
            for role in WORKERS:
                chaos.spawn(role, "worker", storage=spec)
            await asyncio.sleep(0.8)  # the workers are up before the runs start

            def restart(role: str) -> None:
                chaos.spawn(role, "worker", storage=spec)

            kills = chaos.kill_at_random(list(WORKERS), chaos.planned, 3.0 + 0.1 * n, restart)
            outcomes, _ = await asyncio.gather(
                asyncio.gather(
                    *(_start(store, f"s-{i}") for i in range(n)), return_exceptions=True
                ),
                kills,
            )
            for error in [o for o in outcomes if isinstance(o, BaseException)]:
                chaos.violations.append(Violation("start_failed", "-", repr(error)))
            await chaos.wait_until_ended(store, 60)
            await stop_service(service)
    finally:
        await store.disconnect()


async def _start(store: StorageBackend, key: str) -> str:
    return await start(
        _workload(), durable=True, storage=store, idempotency_key=key, steps=4, nap=0.3
    )


def slow_storage_scenario(seed: int) -> Scenario:
    """Slow storage: every call 1-30 ms late, many concurrent runs, workers killed."""
    return Scenario("local_slow_storage", seed, _slow_workload, faults=scaled(3), settle=30)


# --------------------------------------------------------------------------- 4. full disk


def _mount_small_fs(where: Path, megabytes: int) -> bool:
    """A tmpfs of ``megabytes`` at ``where``, if this process may mount (root) and
    ``PYWORKFLOW_CHAOS_NO_MOUNT`` is not set."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or os.environ.get("PYWORKFLOW_CHAOS_NO_MOUNT"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
        capture_output=True,
    )
    return done.returncode == 0


def _fill(disk: Path) -> Path:
    """Write a ballast file until the filesystem is full; returns it."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1 << 10, 1):  # big chunks, then the last bytes
            with contextlib.suppress(OSError):  # ENOSPC
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return ballast


async def _full_disk_setup(chaos: Chaos) -> None:
    disk = chaos.workdir / "disk"
    mounted = _mount_small_fs(disk, 6)
    chaos.full_disk_mounted = mounted  # type: ignore[attr-defined]
    chaos.storage_spec = f"sqlite:{disk / 'chaos.db'}"
    chaos.notes.append("full disk: tmpfs" if mounted else "full disk: PRAGMA max_page_count")


async def _full_disk_workload(chaos: Chaos) -> None:
    """Runs progress, the disk fills up, the engine fails cleanly, space comes back,
    everything finishes."""
    n = scaled(40)
    mounted = getattr(chaos, "full_disk_mounted", False)
    db = chaos.storage_spec.partition(":")[2]
    chaos.spawn("starter", "start", str(n), "f", "0.3")
    for role in WORKERS:
        chaos.spawn(role, "worker")
    await _count_runs(chaos, max(1, n // 4), timeout=30)
    # A step that entered its body just before the disk filled up records its result
    # after: the outage window starts a little early.
    full_since = time.time() - 1.0
    if mounted:
        ballast = _fill(Path(db).parent)
    else:  # the same storage, capped near its current size
        for role in ("starter", *WORKERS):
            chaos.kill(role, fault=False)
        pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
        capped = f"sqlitecap:{pages + 4}:{db}"
        chaos.spawn("starter", "start", str(n), "f", "0.3", storage=capped)
        for role in WORKERS:
            chaos.spawn(role, "worker", storage=capped)
    chaos.faults += 1
    await _wait_for_errors(chaos, timeout=30)
    await _check_while_full(chaos)
    if mounted:
        ballast.unlink()
    # Results computed while full could not be recorded: those steps run again.
    chaos.outages.append((full_since, time.time()))
    for role in ("starter", *WORKERS):
        if not mounted:  # processes with the cap would stay "full": replace them
            chaos.kill(role, fault=False)
        if not chaos.alive(role):  # the starter may have given up: it starts the rest
            chaos.spawn(
                role, *(("start", str(n), "f", "0.3") if role == "starter" else ("worker",))
            )


async def _wait_for_errors(chaos: Chaos, timeout: float) -> None:
    errors = chaos.workdir / "errors.log"
    try:
        await eventually(errors.exists, timeout=timeout, message="the disk never filled up")
    except AssertionError as error:
        chaos.violations.append(Violation("no_full_disk", "-", str(error)))
    await asyncio.sleep(1.0)  # let the workers hit it too


async def _check_while_full(chaos: Chaos) -> None:
    """Storage stays consistent while the disk is full (what can be read is right)."""
    store = chaos.open_storage()
    try:
        await store.connect()
        report = await check_invariants(store)
    except Exception as error:
        chaos.notes.append(f"while full, the storage could not be checked: {error!r}")
        return
    finally:
        with contextlib.suppress(Exception):
            await store.disconnect()
    # Runs whose activation failed are RUNNING with a lease that expires: resumable.
    chaos.violations += [v for v in report.violations if v.kind != "stranded"]
    chaos.notes.append(f"while full: {report.summary().splitlines()[0]}")


async def _full_disk_after(chaos: Chaos) -> None:
    """Every error a caller saw names the problem, as a StorageError; the file is sound."""
    errors = chaos.workdir / "errors.log"
    seen = [json.loads(line) for line in errors.read_text().splitlines()] if errors.exists() else []
    unclear = collections.Counter(
        f"{e['type']}: {e['message'][:200]}"
        for e in seen
        if "StorageError" not in e["bases"] or "full" not in e["message"].lower()
    )
    for detail, times in unclear.items():
        chaos.violations.append(Violation("unclear_storage_error", "-", f"{detail} (x{times})"))
    chaos.notes.append(f"errors seen by callers: {len(seen)}")
    db = chaos.storage_spec.partition(":")[2]
    with sqlite3.connect(db) as conn:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if check != "ok":
        chaos.violations.append(Violation("integrity_check", "-", check))


async def _full_disk_teardown(chaos: Chaos) -> None:
    if getattr(chaos, "full_disk_mounted", False):
        subprocess.run(["umount", "-l", str(chaos.workdir / "disk")], capture_output=True)


def full_disk_scenario(seed: int) -> Scenario:
    """SQLite on a full disk: clean errors, consistent storage, recovery once freed."""
    return Scenario(
        "local_full_disk",
        seed,
        _full_disk_workload,
        setup=_full_disk_setup,
        after=_full_disk_after,
        teardown=_full_disk_teardown,
        settle=40,
    )


# --------------------------------------------------------------------------- 5. corrupt


def corrupt_file_record_scenario(seed: int) -> Scenario:
    from tests.chaos.scenarios_corrupt import corrupt_scenario

    return corrupt_scenario(seed)
