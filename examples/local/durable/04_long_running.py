"""A long sleep: the run suspends, costs nothing while it sleeps, and is resumed later.

Run from the repository root:

    python examples/local/durable/04_long_running.py

``await sleep(...)`` records a ``sleep.started`` event and a durable timer, then the
run becomes SUSPENDED: no coroutine, task or thread waits for it. Two ways to finish:

1. In the same process, the local runtime's timer service (started automatically when
   a run suspends) resumes the run once the timer is due.
2. If the process that started the run is gone, any other process that imports the
   workflow's code can call ``resume(run_id)`` once the sleep is due. The workflow
   replays from the top: the step that already ran returns its recorded result and
   only the code after the sleep runs, in the new process.

The sleeps here last one second; in production they would be "14d" just the same.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pyworkflow import (
    SQLiteStorageBackend,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    resume,
    sleep,
    start,
    step,
    workflow,
)


@step
async def send_email(user: str, kind: str) -> str:
    return f"{kind} email to {user} from pid {os.getpid()}"


@workflow
async def free_trial(user: str, trial_length: str) -> list[str]:
    welcome = await send_email(user, "welcome")
    await sleep(trial_length)
    goodbye = await send_email(user, "trial-ended")
    return [welcome, goodbye]


async def resumed_by_timer_service(tmp: Path) -> None:
    storage = SQLiteStorageBackend(str(tmp / "timer_service.db"))
    started = time.monotonic()
    run_id = await start(free_trial, "ada", "1s", durable=True, storage=storage)
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[1] after start(): {run.status.value}")

    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)
    print(f"[1] completed by the timer service {time.monotonic() - started:.2f}s after start")
    print(f"[1] result: {result}")


async def start_and_exit(db_path: str) -> None:
    """What the other process does: start the run and exit while it sleeps."""
    storage = SQLiteStorageBackend(db_path)
    print(await start(free_trial, "grace", "1s", durable=True, storage=storage))


async def resumed_from_another_process(tmp: Path) -> None:
    db_path = str(tmp / "resume.db")
    starter = subprocess.run(
        [sys.executable, __file__, "--start-and-exit", db_path],
        capture_output=True,
        text=True,
        check=True,
    )
    run_id = starter.stdout.split()[-1]

    storage = SQLiteStorageBackend(db_path)
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[2] process {os.getpid()} finds the run {run.status.value}; its starter has exited")

    # The sleep's end time is in the log. resume() before it would just suspend again
    # (a sleep never ends early), so wait until then.
    events = await get_workflow_events(run_id, storage=storage)
    sleep_event = next(e for e in events if e.type.value == "sleep.started")
    wake_at = datetime.fromisoformat(sleep_event.data["resume_at"])
    await asyncio.sleep(max(0.0, (wake_at - datetime.now(UTC)).total_seconds()) + 0.05)

    # This process must have imported the workflow's code (here: the same module).
    # A long-lived process would rather call pyworkflow.runtime.timer_service(storage)
    # at startup: it resumes every run whose timer came due while nobody was running.
    result = await resume(run_id, storage=storage)
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[2] resume(run_id) -> {run.status.value}")
    print(f"[2] result: {result}")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    await resumed_by_timer_service(tmp)
    await resumed_from_another_process(tmp)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--start-and-exit"]:
        asyncio.run(start_and_exit(sys.argv[2]))
    else:
        asyncio.run(main())
