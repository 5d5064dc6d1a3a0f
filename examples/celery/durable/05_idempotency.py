"""Idempotency keys on Celery: starting the same work twice gives one run.

The twin of ``examples/local/durable/06_idempotency.py``. With Redis, the workers
and Beat of ../README.md running, run from the repository root:

    python examples/celery/durable/05_idempotency.py

``start(..., idempotency_key=...)`` looks the key up in the shared storage first, so
a client that retries (after a timeout, or from another process) gets the id of the
run that exists instead of a second payment. Only while an activation of that run is
executing at that very moment does ``start()`` raise ``WorkflowAlreadyRunningError``;
retrying it a moment later returns the run id.

The workers are idempotent too: a step message delivered twice (a redelivery after a
worker crash) finds the step's outcome already recorded and records nothing more.
"""

import asyncio
import uuid

from pyworkflow import (
    WorkflowAlreadyRunningError,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage.config import config_to_storage


@step
async def charge_payment(payment_id: str, cents: int) -> str:
    return f"charged {cents} cents for {payment_id}"


@workflow
async def take_payment(payment_id: str, cents: int) -> str:
    receipt = await charge_payment(payment_id, cents)
    await sleep("2s")  # wait for the bank to settle
    return receipt


async def main() -> None:
    storage = get_storage() or config_to_storage({})
    # Keys stay in the storage: a fresh suffix per execution of this script, so that
    # running it again makes new payments instead of finding the old runs.
    suffix = uuid.uuid4().hex[:8]

    async def pay(payment_id: str) -> str:
        while True:
            try:
                return await start(
                    take_payment,
                    payment_id,
                    1999,
                    runtime="celery",
                    storage=storage,
                    idempotency_key=f"payment-{payment_id}-{suffix}",
                )
            except WorkflowAlreadyRunningError:
                await asyncio.sleep(0.1)  # an activation is executing right now

    first = await pay("p-1")
    await asyncio.sleep(1.0)  # the client times out and tries again
    second = await pay("p-1")
    result = await get_workflow_result(first, storage=storage, wait=True, timeout=60)
    third = await pay("p-1")  # and again, after the run has completed
    other = await pay("p-2")
    await get_workflow_result(other, storage=storage, wait=True, timeout=60)

    print(f"first start:             {first}")
    print(f"second start, in flight: {second} (same run: {second == first})")
    print(f"third start, completed:  {third} (same run: {third == first})")
    print(f"another payment:         {other} (new run: {other != first})")
    print(f"result: {result}")
    for payment, run_id in (("p-1", first), ("p-2", other)):
        events = await get_workflow_events(run_id, storage=storage)
        charges = [e for e in events if e.type.value == "step.completed"]
        print(f"charge_payment recorded for {payment}: {len(charges)} time(s)")


if __name__ == "__main__":
    asyncio.run(main())
