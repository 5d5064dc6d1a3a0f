"""The pyworkflow demo: one durable order workflow on the embedded SQLite store.

Run it with ``make demo`` (or ``python examples/demo.py``). It shows, on a real
SQLite file at ./pyworkflow_data/pyworkflow.db:

* steps whose results are recorded in an event log;
* a step that fails, waits out its retry delay on a durable timer, and succeeds;
* a sleep that suspends the run (nothing is running meanwhile) and is resumed by
  the in-process timer service;
* replay: after each resume the workflow runs again from the top, and completed
  steps return their recorded results instead of running again.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from loguru import logger

from pyworkflow import (
    RunStatus,
    configure,
    get_storage,
    get_workflow_events,
    get_workflow_run,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.engine.events import Event
from pyworkflow.storage.sqlite import SQLiteStorageBackend

DB_PATH = "./pyworkflow_data/pyworkflow.db"
executions: collections.Counter[str] = collections.Counter()


@step
async def reserve_inventory(order_id: str, items: list[str]) -> dict[str, Any]:
    executions["reserve_inventory"] += 1
    return {"order_id": order_id, "reserved": items}


@step(max_retries=3, retry_delay="1s")
async def charge_payment(order_id: str, amount: float) -> str:
    executions["charge_payment"] += 1
    if executions["charge_payment"] == 1:
        raise ConnectionError("payment gateway timed out")
    return f"ch_{order_id}"


@step
async def ship_order(order_id: str, charge_id: str) -> str:
    executions["ship_order"] += 1
    return f"shipped {order_id} (payment {charge_id})"


@workflow(name="process_order")
async def process_order(order_id: str, items: list[str], amount: float) -> str:
    await reserve_inventory(order_id, items)
    charge_id = await charge_payment(order_id, amount)
    await sleep("2s")  # e.g. wait for the warehouse's pick-up window
    return await ship_order(order_id, charge_id)


def describe(event: Event) -> str:
    d = event.data
    kind = event.type.value
    if kind.startswith("step."):
        text = str(d.get("step_name") or d.get("step_id", ""))
        if kind == "step.started":
            text += f" (attempt {d.get('attempt')})"
        if kind == "step.failed":
            text += f": {d.get('error_type')}: {d.get('error')}"
        if kind == "step.retrying":
            text += f" -> attempt {d.get('attempt')} after {d.get('retry_after')}s"
        if kind == "step.completed":
            text = f"{d.get('step_name')} = {d.get('result')}"
        return text
    if kind == "sleep.started":
        return f"{d['sleep_id']} for {d['duration_seconds']}s"
    if kind in ("workflow.completed",):
        return f"result = {d.get('result')}"
    if kind == "workflow.started":
        return f"{d.get('workflow_name')} args={d.get('args')}"
    return ""


async def watch(run_id: str, t0: float) -> None:
    """Print each status change of the run until it ends."""
    last = None
    while True:
        run = await get_workflow_run(run_id)
        assert run is not None
        if run.status != last:
            last = run.status
            print(f"  {time.monotonic() - t0:5.2f}s  status -> {run.status.value}")
        if run.status in (RunStatus.COMPLETED, RunStatus.FAILED):
            return
        await asyncio.sleep(0.02)


async def main() -> None:
    logger.disable("pyworkflow")  # the account below says what happened
    storage = SQLiteStorageBackend(DB_PATH)
    configure(storage=storage, default_durable=True)
    await storage.connect()
    print(f"pyworkflow demo: a durable order workflow on SQLite ({DB_PATH})\n")
    t0 = time.monotonic()
    run_id = await start(process_order, "A-1001", ["book", "lamp"], 59.90)
    print(f"started run {run_id}; start() returned after {time.monotonic() - t0:.2f}s")
    print("  (the payment step failed once and the run suspended for its retry delay)")
    await watch(run_id, t0)

    run = await get_workflow_run(run_id)
    assert run is not None and get_storage() is storage
    print(f"\nfinished: {run.status.value}, result {run.result}")
    print(
        f"took {time.monotonic() - t0:.2f}s wall clock, including a 1s retry delay and a 2s sleep"
    )
    print("\nhow many times each step body ran (replay returns recorded results):")
    for name in ("reserve_inventory", "charge_payment", "ship_order"):
        print(f"  {name:18} {executions[name]}")

    events = await get_workflow_events(run_id)
    start_ts = events[0].timestamp
    print(f"\nthe event log ({len(events)} events):")
    for event in events:
        offset = (event.timestamp - start_ts).total_seconds()
        print(f"  {event.sequence:2}  +{offset:5.2f}s  {event.type.value:19} {describe(event)}")
    print(f"\ninspect it again any time:  .venv/bin/pyworkflow runs logs {run_id}")
    await storage.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
