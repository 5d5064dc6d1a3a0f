"""A fan-out of ten child workflows for the SIGKILL test in test_children_crash.

Usage: python children_crash_app.py start DB | python children_crash_app.py recover DB RUN_ID
Environment: CRASH_DIR (where counters and markers go), CRASH_MODE ("hang" blocks the
whole process inside child 5's step; empty runs straight through).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from pyworkflow import get_workflow_result, resume, start, start_child_workflow, step, workflow
from pyworkflow.runtime.local import timer_service
from pyworkflow.storage.sqlite import SQLiteStorageBackend

STATE = Path(os.environ["CRASH_DIR"])
MODE = os.environ.get("CRASH_MODE", "")
HANG_AT = 5


def bump(name: str) -> None:
    """Count one execution of a step body, durably (the counter must survive SIGKILL)."""
    with open(STATE / "counters.log", "a") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())


@step
async def work(i: int) -> int:
    bump(f"work{i}")
    if MODE == "hang" and i == HANG_AT:
        (STATE / "hang.ready").touch()
        time.sleep(3600)  # blocks the whole process: the test kills it here
    return i * i


@workflow(name="crash_child")
async def crash_child(i: int) -> int:
    return await work(i)


@workflow(name="crash_fan_out")
async def crash_fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(start_child_workflow(crash_child, i) for i in range(n))))


async def main() -> None:
    command, db = sys.argv[1], sys.argv[2]
    store = SQLiteStorageBackend(db)
    await store.connect()
    if command == "start":
        print(await start(crash_fan_out, 10, durable=True, storage=store))
    else:
        # A restarted process: the timer service finishes what is due (children
        # whose activation died, guards of children never started) while the
        # parent is resumed.
        service = timer_service(store)
        await resume(sys.argv[3], storage=store)
        result = await get_workflow_result(sys.argv[3], storage=store, wait=True, timeout=40)
        await service.idle()
        await service.stop()
        print(json.dumps(result))
    await store.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
