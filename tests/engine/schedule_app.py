"""A scheduler process for tests/engine/test_schedules_multiproc.py.

Usage: python schedule_app.py STORAGE_JSON SECONDS [die-on-save]

Runs ``LocalScheduler`` on the storage (``config_to_storage`` of STORAGE_JSON) for
SECONDS. With ``die-on-save`` the process SIGKILLs itself the first time the schedule
processor saves a schedule after starting a run: the run exists, the schedule does
not know it yet.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from pyworkflow import LocalScheduler, step, workflow
from pyworkflow.runtime.local import timer_service
from pyworkflow.scheduler import schedules
from pyworkflow.storage.config import config_to_storage


@step(name="sched_mp_work")
async def work() -> str:
    return "done"


@workflow(name="sched_mp_job")
async def job() -> str:
    return await work()


def die_after_saving() -> None:
    """SIGKILL this scheduler right after it saved a slot's decision, before it
    created the run."""

    async def create(*_: Any) -> bool:
        os.kill(os.getpid(), signal.SIGKILL)  # no await before: nothing else runs
        return False

    schedules._create_run = create  # type: ignore[assignment]


async def main() -> None:
    store = config_to_storage(json.loads(sys.argv[1]))
    seconds = float(sys.argv[2])
    await store.connect()
    if sys.argv[3:] == ["die-on-save"]:
        die_after_saving()
    scheduler = LocalScheduler(storage=store, poll_interval=0.2)
    await scheduler.run(duration=seconds)
    # The timer service outlives run(): stop it so no processing is cut short at exit.
    await timer_service(store).stop()
    await asyncio.sleep(0.3)  # let the last runs it started finish
    await store.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
