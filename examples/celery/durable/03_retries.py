"""Retries on Celery: a failed attempt waits on a durable timer, not in a worker.

The twin of ``examples/local/durable/03_retries.py``. With Redis, the workers and
Beat of ../README.md running, run from the repository root:

    python examples/celery/durable/03_retries.py

The "API" below is down for the first 1.5 seconds. Each failed attempt is recorded
(``step.failed`` + ``step.retrying``) together with a ``retry`` timer row in the
storage, and the run suspends: the step worker is free at once and no task sits in
the broker for the delay. Beat's tick fires the timer; a workflow worker dispatches
the next attempt, possibly to another step process. A ``FatalError`` is never retried.
"""

import asyncio
import os
import time

from pyworkflow import (
    FatalError,
    WorkflowError,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    start,
    step,
    workflow,
)
from pyworkflow.storage.config import config_to_storage


@step(max_retries=3, retry_delay="1s")
async def call_flaky_api(item: str, up_at: float) -> str:
    if time.time() < up_at:
        raise ConnectionError(f"API unavailable (step process {os.getpid()})")
    return f"{item} synced by step process {os.getpid()}"


@step
async def check_item(item: str) -> str:
    if not item:
        raise FatalError("empty item name: retrying cannot fix that")
    return item


@workflow
async def sync_item(item: str, up_at: float) -> str:
    return await call_flaky_api(await check_item(item), up_at)


async def print_attempts(run_id: str, storage) -> None:
    """The attempts of call_flaky_api, from the run's event log."""
    events = await get_workflow_events(run_id, storage=storage)
    t0 = events[0].timestamp
    retry_recorded_at = None
    for event in events:
        kind, data = event.type.value, event.data
        at = f"+{(event.timestamp - t0).total_seconds():5.2f}s"
        if kind == "step.started" and data["step_name"] == "call_flaky_api":
            waited = ""
            if retry_recorded_at is not None:
                seconds = (event.timestamp - retry_recorded_at).total_seconds()
                waited = f" (waited {seconds:.2f}s on the retry timer)"
            print(f"{at} step.started   attempt {data['attempt']}{waited}")
        elif kind == "step.failed":
            print(f"{at} step.failed    attempt {data['attempt']}: {data['error']}")
        elif kind == "step.retrying":
            print(f"{at} step.retrying  attempt {data['attempt']} after {data['retry_after']}s")
            retry_recorded_at = event.timestamp
        elif kind == "step.completed" and data["step_name"] == "call_flaky_api":
            print(f"{at} step.completed")


async def main() -> None:
    storage = get_storage() or config_to_storage({})

    up_at = time.time() + 1.5  # the API comes back in 1.5 s
    run_id = await start(sync_item, "invoice-7", up_at, runtime="celery", storage=storage)
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    print(f"result: {result!r}")
    await print_attempts(run_id, storage)

    # FatalError: recorded once, not retried; the run fails.
    run_id = await start(sync_item, "", up_at, runtime="celery", storage=storage)
    try:
        await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    except WorkflowError as error:
        print(f"FatalError, not retried: {error}")
    run = await get_workflow_run(run_id, storage=storage)
    failures = await get_workflow_events(run_id, storage=storage)
    attempts = sum(e.type.value == "step.failed" for e in failures)
    print(f"second run: {run.status.value} after {attempts} attempt")


if __name__ == "__main__":
    asyncio.run(main())
