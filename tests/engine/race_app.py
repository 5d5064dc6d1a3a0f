"""A durable workflow for race tests, run as separate processes by test_races.

Usage:
  python race_app.py start DB            start a run (suspends on its sleep) and exit
  python race_app.py resume DB RUN_ID    resume the run once
  python race_app.py timers DB SECONDS   run the in-process timer service for a while
Counters of step-body executions go to $RACE_DIR/counters.log.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from pyworkflow import resume, sleep, start, step, workflow
from pyworkflow.runtime import timer_service
from pyworkflow.storage.sqlite import SQLiteStorageBackend


def bump(name: str) -> None:
    with open(Path(os.environ["RACE_DIR"]) / "counters.log", "a") as f:
        f.write(f"{name}\n")
        f.flush()
        os.fsync(f.fileno())


@step
async def first() -> int:
    bump("first")
    return 1


@step
async def slow() -> int:
    bump("slow")
    await asyncio.sleep(0.5)  # a wide window for a second activation to collide
    return 2


@step
async def last() -> int:
    bump("last")
    return 3


@workflow(name="racy")
async def racy() -> int:
    a = await first()
    await sleep(0.3)
    return a + await slow() + await last()


async def main() -> None:
    command, db = sys.argv[1], sys.argv[2]
    store = SQLiteStorageBackend(db)
    await store.connect()
    if command == "start":
        print(await start(racy, durable=True, storage=store))
    elif command == "resume":
        print(json.dumps(await resume(sys.argv[3], storage=store)))
    else:
        service = timer_service(store)
        await asyncio.sleep(float(sys.argv[3]))
        await service.stop()
    await store.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
