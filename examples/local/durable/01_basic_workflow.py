"""A durable workflow: three steps whose results are recorded in an event log.

Run from the repository root:

    python examples/local/durable/01_basic_workflow.py

The run is stored in a SQLite file in a temporary directory, passed explicitly with
``durable=True, storage=...``. Each step's result is committed before the workflow
moves on, so a crash after ``charge_card`` would never charge the card twice.
"""

import asyncio
import os
import tempfile
from pathlib import Path

from pyworkflow import (
    SQLiteStorageBackend,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    start,
    step,
    workflow,
)


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
    # PYWORKFLOW_STORAGE_TYPE (e.g. postgres + PYWORKFLOW_POSTGRES_*) picks the storage;
    # without it, a SQLite file in a temporary directory.
    if os.environ.get("PYWORKFLOW_STORAGE_TYPE"):
        storage = get_storage()
    else:
        storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "basic.db"))

    # start() runs the workflow right away (local runtime) and returns the run id.
    run_id = await start(process_order, "A-100", 42.5, durable=True, storage=storage)

    run = await get_workflow_run(run_id, storage=storage)
    result = await get_workflow_result(run_id, storage=storage)
    events = await get_workflow_events(run_id, storage=storage)

    print(f"run id:   {run_id}")
    print(f"status:   {run.status.value}")
    print(f"result:   {result}")
    print(f"events:   {len(events)} ({', '.join(e.type.value for e in events)})")
    print(f"storage:  {type(storage).__name__}")


if __name__ == "__main__":
    asyncio.run(main())
