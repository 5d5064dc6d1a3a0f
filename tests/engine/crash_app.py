"""A durable workflow for crash tests, run as a separate process by test_crash_recovery.

Usage: python crash_app.py start DB | python crash_app.py resume DB RUN_ID
       | python crash_app.py recover DB RUN_ID (worker-loss recovery, as a Celery worker does)
Environment: CRASH_DIR (where counters and markers go), CRASH_MODE ("between" hangs
after step one, "inside" hangs inside step two; empty runs straight through).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from pyworkflow import resume, start, step, workflow
from pyworkflow.runtime.driver import resume_run
from pyworkflow.storage.sqlite import SQLiteStorageBackend

STATE = Path(os.environ["CRASH_DIR"])
MODE = os.environ.get("CRASH_MODE", "")


def bump(name: str) -> None:
    """Count one execution of a step body, durably (the counter must survive SIGKILL)."""
    with open(STATE / "counters.log", "a") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())


def hang(tag: str) -> None:
    (STATE / f"{tag}.ready").touch()
    time.sleep(3600)  # blocks the whole process: the test kills it here


@step
async def step_one() -> int:
    bump("one")
    return 1


@step
async def step_two() -> int:
    bump("two")
    if MODE == "inside":
        hang("inside")
    return 2


@step
async def step_three() -> int:
    bump("three")
    return 3


@workflow(name="crashy")
async def crashy() -> int:
    a = await step_one()
    if MODE == "between":
        hang("between")
    b = await step_two()
    c = await step_three()
    return a + b + c


async def main() -> None:
    command, db = sys.argv[1], sys.argv[2]
    store = SQLiteStorageBackend(db)
    await store.connect()
    if command == "start":
        print(await start(crashy, durable=True, storage=store))
    elif command == "recover":
        await resume_run(store, sys.argv[3], recovery=True)
        run = await store.get_run(sys.argv[3])
        print(json.dumps(run.status.value if run else None))
    else:
        print(json.dumps(await resume(sys.argv[3], storage=store)))
    await store.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
