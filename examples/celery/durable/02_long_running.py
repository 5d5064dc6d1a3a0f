"""A sleeping run on Celery: no worker holds it; Beat's timer tick wakes it.

The twin of ``examples/local/durable/04_long_running.py``. With Redis, the workers
and Beat of ../README.md running, run from the repository root:

    python examples/celery/durable/02_long_running.py

``await sleep("3s")`` records ``sleep.started`` and a durable timer row, then the run
is SUSPENDED: no task waits in the broker and no worker keeps it in memory. Every
second Beat sends ``pyworkflow.tick``; the tick that sees the timer coming due
claims it (atomically: two Beat processes never both fire it) and sends
``pyworkflow.resume_workflow`` to arrive when it is due. A workflow worker replays
the run: the first step returns its recorded result, and the rest runs.

The sleep lasts three seconds here; in production it would be "14d" just the same.
"""

import asyncio
import os
import time
from datetime import datetime

from pyworkflow import (
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage.config import config_to_storage


@step
async def send_email(user: str, kind: str) -> str:
    return f"{kind} email to {user} from pid {os.getpid()}"


@workflow
async def free_trial(user: str, trial_length: str) -> list[str]:
    welcome = await send_email(user, "welcome")
    await sleep(trial_length)
    goodbye = await send_email(user, "trial-ended")
    return [welcome, goodbye]


async def wait_for_status(run_id: str, storage, statuses: tuple[str, ...], timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await get_workflow_run(run_id, storage=storage)
        if run is not None and run.status.value in statuses:
            return run
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {run_id} never reached {statuses}: are workers and Beat running?")


async def main() -> None:
    storage = get_storage() or config_to_storage({})
    started = time.monotonic()
    run_id = await start(free_trial, "ada", "3s", runtime="celery", durable=True, storage=storage)

    run = await wait_for_status(run_id, storage, ("suspended",))
    print(f"[1] while it sleeps the run is {run.status.value}; no worker holds it")

    run = await wait_for_status(run_id, storage, ("completed", "failed"))
    print(f"[2] {run.status.value} {time.monotonic() - started:.2f}s after start()")

    events = {e.type.value: e for e in await get_workflow_events(run_id, storage=storage)}
    due = datetime.fromisoformat(events["sleep.started"].data["resume_at"])
    woke = events["sleep.completed"].timestamp
    print(f"[2] the sleep ended {(woke - due).total_seconds() * 1000:.0f} ms after its timer")
    print(f"[2] result: {await get_workflow_result(run_id, storage=storage)}")


if __name__ == "__main__":
    asyncio.run(main())
