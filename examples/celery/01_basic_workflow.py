"""The basic durable workflow, on Celery: three steps run by step workers.

The twin of ``examples/local/durable/01_basic_workflow.py``. Start Redis, the workers
and Beat first (DISTRIBUTED.md, or ``docker compose up``), all with the same settings:

    export PYWORKFLOW_CELERY_BROKER=redis://localhost:6379/0
    export PYWORKFLOW_STORAGE_TYPE=sqlite PYWORKFLOW_STORAGE_PATH=/tmp/pyworkflow.db
    export PYWORKFLOW_DISCOVER=examples.celery.01_basic_workflow
    celery -A pyworkflow.celery.app worker --loglevel=info \\
        -Q pyworkflow.workflows,pyworkflow.schedules
    celery -A pyworkflow.celery.app worker --loglevel=info -Q pyworkflow.steps
    celery -A pyworkflow.celery.app beat --loglevel=info \\
        --scheduler pyworkflow.celery.scheduler:PyWorkflowScheduler

then, from the repository root with the same environment:

    python examples/celery/01_basic_workflow.py

``start(..., runtime="celery")`` only sends a message and returns the run id; a
workflow worker creates the run, each step becomes a task on ``pyworkflow.steps``, and
this script watches the run in the shared storage until it completes.
"""

import asyncio
import time

from pyworkflow import (
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    start,
    step,
    workflow,
)
from pyworkflow.storage.config import config_to_storage


@step
async def validate_order(order_id: str, amount: float) -> dict:
    if amount <= 0:
        raise ValueError(f"order {order_id}: amount must be positive")
    return {"order_id": order_id, "amount": amount}


@step
async def charge_card(order: dict) -> str:
    return f"charge_{order['order_id']}"


@step
async def send_receipt(order: dict, charge_id: str) -> str:
    return f"receipt for {order['order_id']} ({charge_id})"


@workflow
async def process_order(order_id: str, amount: float) -> dict:
    order = await validate_order(order_id, amount)
    charge_id = await charge_card(order)
    receipt = await send_receipt(order, charge_id)
    return {"charge_id": charge_id, "receipt": receipt}


async def wait_until_finished(run_id: str, storage, timeout: float = 60.0):
    """Poll the shared storage; the run appears once a workflow worker picked it up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await get_workflow_run(run_id, storage=storage)
        if run is not None and run.status.value in ("completed", "failed", "cancelled"):
            return run
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {run_id} did not finish in {timeout}s: are the workers running?")


async def main() -> None:
    # The storage the workers use: PYWORKFLOW_STORAGE_* (or pyworkflow.config.yaml),
    # else the embedded default ./pyworkflow_data/pyworkflow.db.
    storage = get_storage() or config_to_storage({})

    started = time.monotonic()
    run_id = await start(
        process_order, "A-100", 42.5, runtime="celery", durable=True, storage=storage
    )
    sent = time.monotonic() - started
    run = await wait_until_finished(run_id, storage)
    finished = time.monotonic() - started

    result = await get_workflow_result(run_id, storage=storage)
    events = await get_workflow_events(run_id, storage=storage)
    print(f"run id:   {run_id} (start() returned after {sent * 1000:.0f} ms)")
    print(f"status:   {run.status.value} after {finished:.2f}s")
    print(f"result:   {result}")
    print(f"events:   {len(events)} ({', '.join(e.type.value for e in events)})")


if __name__ == "__main__":
    asyncio.run(main())
