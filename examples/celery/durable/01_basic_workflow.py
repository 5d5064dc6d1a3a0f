"""The basic durable workflow, on Celery: three steps run by step workers.

The twin of ``examples/local/durable/01_basic_workflow.py``. Start Redis, a workflow
worker, a step worker and Beat first, all with the same settings (../README.md), then
run from the repository root with the same environment:

    python examples/celery/durable/01_basic_workflow.py

``start(..., runtime="celery")`` records the run (PENDING) in the shared storage,
sends one message and returns the run id; a workflow worker advances the run, each
step becomes a task on ``pyworkflow.steps``, and this script reads the result back
from the storage.
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


async def main() -> None:
    # The storage the workers use: PYWORKFLOW_STORAGE_* (or pyworkflow.config.yaml),
    # else the embedded default ./pyworkflow_data/pyworkflow.db.
    storage = get_storage() or config_to_storage({})

    started = time.monotonic()
    run_id = await start(
        process_order, "A-100", 42.5, runtime="celery", durable=True, storage=storage
    )
    sent = time.monotonic() - started
    # wait=True polls the storage until a worker has finished the run.
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    finished = time.monotonic() - started

    run = await get_workflow_run(run_id, storage=storage)
    events = await get_workflow_events(run_id, storage=storage)
    print(f"run id:   {run_id} (start() returned after {sent * 1000:.0f} ms)")
    print(f"status:   {run.status.value} after {finished:.2f}s")
    print(f"result:   {result}")
    print(f"events:   {len(events)} ({', '.join(e.type.value for e in events)})")


if __name__ == "__main__":
    asyncio.run(main())
