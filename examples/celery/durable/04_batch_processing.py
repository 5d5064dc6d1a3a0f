"""Batch processing on Celery: fan out many steps with ``asyncio.gather``.

With Redis, the workers and Beat of ../README.md running, run from the repository
root:

    python examples/celery/durable/04_batch_processing.py

The workflow scores 20 items, each a step that takes 0.2 s (an API call, say), with
one ``asyncio.gather``. The activation records the 20 step calls and sends them to
``pyworkflow.steps`` together, then suspends; every step process takes one, so the
batch takes about 4 s divided by the number of step processes. Each outcome is
recorded once; when the last one is in, a workflow worker replays the run (the 20
steps return their recorded results at once) and the summary step runs.

Scale the batch by adding step processes (``--concurrency=N``) or machines; the
workflow worker only replays the log, which takes milliseconds.
"""

import asyncio
import os
import time

from pyworkflow import get_storage, get_workflow_events, get_workflow_result, start, step, workflow
from pyworkflow.storage.config import config_to_storage

ITEMS = 20
SECONDS_PER_ITEM = 0.2


@step
async def score_item(item: int) -> dict:
    await asyncio.sleep(SECONDS_PER_ITEM)  # stands for an API call
    return {"item": item, "score": item * 7 % 10, "pid": os.getpid()}


@step
async def store_summary(scores: list[int]) -> dict:
    return {"count": len(scores), "total": sum(scores), "best": max(scores)}


@workflow
async def score_batch(count: int) -> dict:
    results = await asyncio.gather(*(score_item(i) for i in range(count)))
    summary = await store_summary([r["score"] for r in results])
    return {"summary": summary, "pids": sorted({r["pid"] for r in results})}


async def main() -> None:
    storage = get_storage() or config_to_storage({})

    began = time.monotonic()
    run_id = await start(score_batch, ITEMS, runtime="celery", storage=storage)
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=120)
    elapsed = time.monotonic() - began

    events = await get_workflow_events(run_id, storage=storage)
    completed = [e for e in events if e.type.value == "step.completed"]
    pids = result["pids"]
    print(f"summary: {result['summary']}")
    print(f"{ITEMS} steps of {SECONDS_PER_ITEM}s ran on {len(pids)} step processes {pids}")
    print(
        f"the batch took {elapsed:.2f}s ({ITEMS * SECONDS_PER_ITEM:.1f}s if run one after another)"
    )
    print(f"step outcomes recorded: {len(completed)} ({ITEMS} items + the summary), each once")


if __name__ == "__main__":
    asyncio.run(main())
