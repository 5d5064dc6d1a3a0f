"""Durable retries: a step fails twice, waits out its retry delay, then succeeds.

Run from the repository root:

    python examples/local/durable/03_retries.py

Each failure is recorded (``step.failed`` + ``step.retrying``) together with a durable
retry timer, and the run suspends: no coroutine waits in memory. The in-process timer
service resumes the run when the delay has passed; had the process stopped, any
process calling ``resume(run_id)`` (or running the timer service) later would
continue it. A ``FatalError`` is never retried.
"""

import asyncio
import os
import tempfile
from pathlib import Path

from pyworkflow import (
    FatalError,
    RunStatus,
    SQLiteStorageBackend,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    start,
    step,
    workflow,
)

calls = 0


@step(max_retries=3, retry_delay="1s")
async def call_flaky_api(item: str) -> str:
    global calls
    calls += 1
    if calls <= 2:
        raise ConnectionError(f"API unavailable (call {calls})")
    return f"{item} synced on call {calls}"


@step
async def check_input(item: str) -> str:
    if not item:
        raise FatalError("empty item name: retrying cannot fix that")
    return item


@workflow
async def sync_item(item: str) -> str:
    return await call_flaky_api(await check_input(item))


async def main() -> None:
    # PYWORKFLOW_STORAGE_TYPE (e.g. postgres + PYWORKFLOW_POSTGRES_*) picks the storage;
    # without it, a SQLite file in a temporary directory.
    if os.environ.get("PYWORKFLOW_STORAGE_TYPE"):
        storage = get_storage()
    else:
        storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "retries.db"))

    run_id = await start(sync_item, "invoice-7", durable=True, storage=storage)
    run = await get_workflow_run(run_id, storage=storage)
    print(f"after the first failure the run is {run.status.value} (waiting for its retry)")

    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)
    print(f"result: {result!r}")

    events = await get_workflow_events(run_id, storage=storage)
    t0 = events[0].timestamp
    retry_ready_at = None
    for event in events:
        data = event.data
        at = f"+{(event.timestamp - t0).total_seconds():5.2f}s"
        if event.type.value == "step.failed":
            print(f"{at} step.failed    attempt {data['attempt']}: {data['error']}")
        elif event.type.value == "step.retrying":
            print(f"{at} step.retrying  attempt {data['attempt']} after {data['retry_after']}s")
            retry_ready_at = event.timestamp
        elif event.type.value == "step.started" and data["step_name"] == "call_flaky_api":
            waited = ""
            if retry_ready_at is not None:
                waited = f" ({(event.timestamp - retry_ready_at).total_seconds():.2f}s later)"
            print(f"{at} step.started   attempt {data['attempt']}{waited}")
    print(f"call_flaky_api ran {calls} times")

    # FatalError: recorded once, not retried; the run fails (start() re-raises it).
    try:
        await start(sync_item, "", durable=True, storage=storage)
    except FatalError as error:
        print(f"FatalError, not retried: {error}")
    failed_runs, _ = await storage.list_runs(status=RunStatus.FAILED)
    print(f"failed runs: {len(failed_runs)}, error: {failed_runs[0].error}")


if __name__ == "__main__":
    asyncio.run(main())
