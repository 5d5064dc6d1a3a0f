"""Idempotency keys: starting the same work twice gives the same run, done once.

Run from the repository root:

    python examples/local/durable/06_idempotency.py

Pass ``idempotency_key=`` to ``start()``, for instance a payment or message id. A
second ``start()`` with a key whose run already exists (completed, failed or
suspended) returns that run's id and runs nothing; while the first run is actively
running it raises ``WorkflowAlreadyRunningError`` instead. Keys are kept in the
storage, so this holds across processes and restarts.
"""

import asyncio
import os
import tempfile
from collections import Counter
from pathlib import Path

from pyworkflow import SQLiteStorageBackend, get_storage, get_workflow_result, start, step, workflow

charges: Counter[str] = Counter()


@step
async def charge(payment_id: str, cents: int) -> str:
    charges[payment_id] += 1
    return f"charged {cents} cents for {payment_id}"


@workflow
async def take_payment(payment_id: str, cents: int) -> str:
    return await charge(payment_id, cents)


async def main() -> None:
    # PYWORKFLOW_STORAGE_TYPE (e.g. postgres + PYWORKFLOW_POSTGRES_*) picks the storage;
    # without it, a SQLite file in a temporary directory.
    if os.environ.get("PYWORKFLOW_STORAGE_TYPE"):
        storage = get_storage()
    else:
        storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "idempotency.db"))

    async def pay(payment_id: str) -> str:
        return await start(
            take_payment,
            payment_id,
            1999,
            durable=True,
            storage=storage,
            idempotency_key=f"payment-{payment_id}",
        )

    first = await pay("p-1")
    second = await pay("p-1")  # e.g. the client retried after a network error
    other = await pay("p-2")

    print(f"first start:  {first}")
    print(f"second start: {second} (same run: {first == second})")
    print(f"other key:    {other} (new run: {other != first})")
    print(f"result: {await get_workflow_result(first, storage=storage)}")
    print(f"charge step ran: p-1 x{charges['p-1']}, p-2 x{charges['p-2']}")


if __name__ == "__main__":
    asyncio.run(main())
