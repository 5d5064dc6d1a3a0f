"""Child workflows on Celery: an order workflow delegates to payment, shipping and
gift-card runs, each a run of its own on the workers.

The twin of ``examples/local/durable/09_child_workflows.py`` (its workflows have
other names here: every example of this folder is imported by the same workers, and
``process_order`` and ``charge_payment`` are taken). With Redis, the workers and Beat
of ../README.md running, run from the repository root:

    python examples/celery/durable/09_child_workflows.py

``await start_child_workflow(wf, *args)`` starts ``wf`` as a *child* run of the
calling run (its ``parent_run_id`` is the parent, its ``nesting_depth`` one more)
and returns the child's result. On Celery the parent's activation records
``child_workflow.started``, creates the child run and sends a resume for it; the
parent then suspends and no worker holds it. The child runs on the workflow workers
(its steps on the step workers); when it ends, its outcome is appended to the
parent's log and a resume of the parent is sent. Here:

1. ``charge_order`` runs and returns a charge id to the parent.
2. ``arrange_shipping`` sleeps two seconds (waiting for the courier's pickup slot):
   the child and the parent are both SUSPENDED, with one timer row between them.
   Beat's tick wakes the child; the child completes and the parent resumes.
3. ``issue_gift_card`` fails. In the parent the call raises
   ``ChildWorkflowFailedError`` (with the child's error, error type and run id); the
   parent catches it and completes anyway.

At the end the script prints the run tree read back from the shared storage with
``get_children()``.
"""

import asyncio
import os
import time

from pyworkflow import (
    ChildWorkflowFailedError,
    FatalError,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.serialization.decoder import deserialize
from pyworkflow.storage.config import config_to_storage
from pyworkflow.storage.schemas import WorkflowRun

# ----------------------------------------------------------------- the children


@step
async def charge_order_card(order_id: str, amount: float) -> str:
    return f"ch_{order_id}_{amount:.2f}"


@workflow
async def charge_order(order_id: str, amount: float) -> str:
    return await charge_order_card(order_id, amount)


@step
async def book_courier(order_id: str) -> dict:
    return {"tracking": f"TRK-{order_id}", "pid": os.getpid()}


@workflow
async def arrange_shipping(order_id: str) -> str:
    await sleep("2s")  # the courier's next pickup slot; "2h" in real life
    booked = await book_courier(order_id)
    return booked["tracking"]


@step(max_retries=0)
async def call_gift_card_api(order_id: str) -> str:
    raise FatalError(f"gift card service rejected {order_id}")


@workflow
async def issue_gift_card(order_id: str) -> str:
    return await call_gift_card_api(order_id)


# ----------------------------------------------------------------- the parent


@workflow
async def place_order(order_id: str, amount: float) -> dict:
    charge = await start_child_workflow(charge_order, order_id, amount)
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


async def print_tree(storage, run: WorkflowRun, indent: str = "") -> None:
    depth = await storage.get_nesting_depth(run.run_id)
    shown = outcome(run) if depth else ""  # the root's result was printed above
    print(f"{indent}{run.workflow_name} [{run.status.value}] depth={depth} {shown}".rstrip())
    for child in await storage.get_children(run.run_id):
        await print_tree(storage, child, indent + "    ")


async def shipping_asleep(storage, run_id: str, timeout: float = 60.0) -> WorkflowRun:
    """The shipping child once it sleeps (the parent waits for it meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in await storage.get_children(run_id):
            if child.workflow_name == "arrange_shipping" and child.status.value == "suspended":
                return child
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {run_id} never reached its shipping child: are workers running?")


async def main() -> None:
    # The storage the workers use (PYWORKFLOW_STORAGE_* or pyworkflow.config.yaml).
    storage = get_storage() or config_to_storage({})

    began = time.monotonic()
    run_id = await start(place_order, "A-17", 59.9, runtime="celery", storage=storage)
    shipping = await shipping_asleep(storage, run_id)
    parent = await get_workflow_run(run_id, storage=storage)
    timers = [t.kind for t in await storage.list_timers(shipping.run_id)]
    print(
        f"[1] while arrange_shipping sleeps: parent {parent.status.value}, "
        f"child {shipping.status.value} (timers: {timers}); no worker holds either"
    )

    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    print(f"[2] parent completed {time.monotonic() - began:.1f}s after start()")
    print(f"[2] result: {result}")

    print("[3] run tree:")
    await print_tree(storage, await get_workflow_run(run_id, storage=storage), "    ")
    some_child = (await storage.get_children(run_id))[0]
    found = await storage.get_parent(some_child.run_id)
    print(f"[3] get_parent({some_child.workflow_name}) is the order run: {found.run_id == run_id}")

    print("[3] child events in the parent's log:")
    for event in await get_workflow_events(run_id, storage=storage):
        if event.type.value.startswith("child_workflow."):
            print(f"    {event.type.value:28} {event.data['child_id']}")


if __name__ == "__main__":
    asyncio.run(main())
