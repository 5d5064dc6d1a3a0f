"""Child workflows: an order workflow delegates to payment, shipping and gift-card runs.

Run from the repository root:

    python examples/local/durable/09_child_workflows.py

``await start_child_workflow(wf, *args)`` starts ``wf`` as a run of its own, a
*child* of the calling run (its ``parent_run_id`` is the parent, its
``nesting_depth`` one more), and returns the child's result. Here:

1. ``charge_payment`` runs and returns a charge id to the parent.
2. ``arrange_shipping`` sleeps one second (waiting for the courier's pickup slot).
   The child suspends, and so does the parent: both are SUSPENDED and nothing waits
   in memory. When the child's timer fires, the child completes, its outcome is
   recorded in the parent's log and the parent resumes from there.
3. ``issue_gift_card`` fails. In the parent the call raises
   ``ChildWorkflowFailedError`` (with the child's error, error type and run id); the
   parent catches it and completes anyway.

At the end the script prints the run tree read back from storage with
``get_children()``.
"""

import asyncio
import tempfile
import time
from pathlib import Path

from pyworkflow import (
    ChildWorkflowFailedError,
    FatalError,
    SQLiteStorageBackend,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.runtime.local import timer_service
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.schemas import WorkflowRun

# ----------------------------------------------------------------- the children


@step
async def charge_card(order_id: str, amount: float) -> str:
    return f"ch_{order_id}_{amount:.2f}"


@workflow
async def charge_payment(order_id: str, amount: float) -> str:
    return await charge_card(order_id, amount)


@step
async def book_courier(order_id: str) -> str:
    return f"TRK-{order_id}"


@workflow
async def arrange_shipping(order_id: str) -> str:
    await sleep("1s")  # the courier's next pickup slot; "2h" in real life
    return await book_courier(order_id)


@step(max_retries=0)
async def call_gift_card_api(order_id: str) -> str:
    raise FatalError(f"gift card service rejected {order_id}")


@workflow
async def issue_gift_card(order_id: str) -> str:
    return await call_gift_card_api(order_id)


# ----------------------------------------------------------------- the parent


@workflow
async def process_order(order_id: str, amount: float) -> dict:
    charge = await start_child_workflow(charge_payment, order_id, amount)
    tracking = await start_child_workflow(arrange_shipping, order_id)
    try:
        gift_card = await start_child_workflow(issue_gift_card, order_id)
    except ChildWorkflowFailedError as error:
        # error.child_run_id names the failed run, to look at its events.
        gift_card = f"none ({error.error_type}: {error.error})"
    return {"charge": charge, "tracking": tracking, "gift_card": gift_card}


# ----------------------------------------------------------------- main


def outcome(run: WorkflowRun) -> str:
    if run.result is not None:
        return f"-> {deserialize(run.result)!r}"
    return f"-> {run.error}" if run.error else ""


async def print_tree(storage: SQLiteStorageBackend, run: WorkflowRun, indent: str = "") -> None:
    depth = await storage.get_nesting_depth(run.run_id)
    shown = outcome(run) if depth else ""  # the root's result was printed above
    print(f"{indent}{run.workflow_name} [{run.status.value}] depth={depth} {shown}".rstrip())
    for child in await storage.get_children(run.run_id):
        await print_tree(storage, child, indent + "    ")


async def main() -> None:
    storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "orders.db"))
    # The in-process timer service fires the shipping child's sleep timer. (The local
    # runtime starts it by itself when a run suspends on a timer; a long-lived process
    # starts it at startup to finish whatever became due while it was down.)
    timer_service(storage)

    began = time.monotonic()
    run_id = await start(process_order, "A-17", 59.9, durable=True, storage=storage)
    parent = await get_workflow_run(run_id, storage=storage)
    print(f"after start(): parent {parent.status.value}")
    for child in await storage.get_children(run_id):
        print(f"    child {child.workflow_name}: {child.status.value}")

    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)
    print(f"parent completed {time.monotonic() - began:.1f}s after start()")
    print(f"result: {result}")

    print("run tree:")
    await print_tree(storage, await get_workflow_run(run_id, storage=storage), "    ")

    some_child = (await storage.get_children(run_id))[0]
    found = await storage.get_parent(some_child.run_id)
    print(f"get_parent({some_child.workflow_name}) is the order run: {found.run_id == run_id}")

    print("child events in the parent's log:")
    for event in await get_workflow_events(run_id, storage=storage):
        if event.type.value.startswith("child_workflow."):
            print(f"    {event.type.value:28} {event.data['child_id']}")


if __name__ == "__main__":
    asyncio.run(main())
