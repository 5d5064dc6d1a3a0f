"""Crash recovery: a process is SIGKILLed in the middle of a run; another one finishes it.

Run from the repository root:

    python examples/local/durable/13_crash_recovery.py

The script starts itself again as a child process that runs ``ship_order`` on a SQLite
file and is killed (SIGKILL: no cleanup, no ``finally``) while the second step's body
is running. The parent then calls ``resume()`` on the same file: the first step's
recorded result is replayed, not run again; only the step the crash interrupted runs
a second time (a step body runs more than once only when its process died inside it).
Finally ``check_invariants`` reads the storage and confirms what the engine
guarantees: gap-free event logs, one completion per step, no run stranded.
"""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyworkflow import SQLiteStorageBackend, resume, start, step, workflow
from pyworkflow.testing.invariants import check_invariants

WORKDIR = Path(os.environ.get("CRASH_EXAMPLE_DIR") or tempfile.mkdtemp())
DB = WORKDIR / "orders.db"
CRASH = "CRASH_EXAMPLE_DIR" in os.environ  # set only in the child that gets killed


def count(name: str) -> None:
    """Write one line per execution of a step body, durably (it must survive SIGKILL)."""
    with open(WORKDIR / "bodies.log", "a") as log:
        log.write(name + "\n")
        log.flush()
        os.fsync(log.fileno())


@step
async def reserve_stock(order: str) -> str:
    count("reserve_stock")
    return f"stock reserved for {order}"


@step
async def print_label(order: str) -> str:
    count("print_label")
    if CRASH:
        (WORKDIR / "inside").touch()
        time.sleep(3600)  # the parent SIGKILLs this process here
    return f"label printed for {order}"


@workflow
async def ship_order(order: str) -> list[str]:
    return [await reserve_stock(order), await print_label(order)]


async def child() -> None:
    storage = SQLiteStorageBackend(str(DB))
    # The key lets the parent find the run: start() does not return before it is killed.
    await start(ship_order, "order-7", durable=True, storage=storage, idempotency_key="order-7")


async def main() -> None:
    env = dict(os.environ, CRASH_EXAMPLE_DIR=str(WORKDIR))
    proc = subprocess.Popen([sys.executable, __file__], env=env)
    while not (WORKDIR / "inside").exists():
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    storage = SQLiteStorageBackend(str(DB))
    await storage.connect()
    run = await storage.get_run_by_idempotency_key("order-7")
    assert run is not None
    run_id = run.run_id
    print(f"process {proc.pid} killed inside print_label; run {run_id} is {run.status.value}")

    # The dead owner is detected at once (same machine); on Celery a worker does this
    # by itself, and elsewhere the run is taken over when its lease expires.
    result = await resume(run_id, storage=storage)
    print(f"resumed by process {os.getpid()}: {result}")

    bodies = (WORKDIR / "bodies.log").read_text().split()
    for name in ("reserve_stock", "print_label"):
        print(f"{name} body ran {bodies.count(name)}x")
    report = await check_invariants(storage)
    print(f"invariants: {report.summary()}")
    await storage.disconnect()


if __name__ == "__main__":
    asyncio.run(child() if CRASH else main())
