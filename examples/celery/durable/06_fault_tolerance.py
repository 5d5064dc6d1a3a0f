"""Fault tolerance on Celery: a failing step, a crashing step process, recovery settings.

With Redis, the workers and Beat of ../README.md running, run from the repository
root:

    python examples/celery/durable/06_fault_tolerance.py

1. ``reserve_stock`` fails on its first attempt. The failure is recorded with a
   ``retry`` timer row in the storage and the run suspends; Beat's tick fires the
   timer 2 s later and the second attempt runs. No worker waited meanwhile, and had
   every worker been restarted in between, the retry would still happen.
2. ``pack_parcel`` kills its own step process on its first delivery (``os._exit``,
   as SIGKILL or the OOM killer would). Celery gives the message back to the queue
   (``task_acks_late`` + ``task_reject_on_worker_lost``), another process runs the
   step again, and its outcome is recorded once. (This needs the default prefork
   pool; with ``--pool=solo`` the step does not crash, as it would take the whole
   worker down.) Delivery counts are kept in the broker's Redis, which every worker
   reaches.
3. The run's recovery settings, from ``@workflow(...)``, and the engine's timings for
   the failures an example cannot show without killing your workers (DISTRIBUTED.md,
   "Failure semantics").
"""

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import redis
from billiard.process import current_process

from pyworkflow import (
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    start,
    step,
    workflow,
)
from pyworkflow.celery.app import resolve_broker_url
from pyworkflow.storage.config import config_to_storage


def delivery(token: str, what: str) -> int:
    """How many times step ``what`` of order ``token`` has been delivered so far."""
    key = f"pyworkflow-example-06:{token}:{what}"
    with redis.Redis.from_url(resolve_broker_url()) as client:
        count = client.incr(key)
        client.expire(key, 600)
    return int(count)


@step(max_retries=2, retry_delay="2s")
async def reserve_stock(order_id: str, token: str) -> str:
    if delivery(token, "reserve") == 1:
        raise ConnectionError("warehouse API timed out")
    return f"stock reserved for {order_id}"


@step
async def pack_parcel(order_id: str, token: str) -> str:
    count = delivery(token, "pack")
    if count == 1 and current_process().name.startswith("ForkPoolWorker"):
        os._exit(1)  # the step process dies mid-step
    return f"parcel for {order_id} packed by step process {os.getpid()} on delivery {count}"


@workflow(recover_on_worker_loss=True, max_recovery_attempts=2)
async def fulfil_order(order_id: str, token: str) -> list[str]:
    reserved = await reserve_stock(order_id, token)
    packed = await pack_parcel(order_id, token)
    return [reserved, packed]


async def wait_for_retry_timer(run_id: str, storage, timeout: float = 30.0):
    """The run once its failed attempt is recorded and it suspended, and its retry timer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await get_workflow_run(run_id, storage=storage)
        timers = [t for t in await storage.list_timers(run_id) if t.kind == "retry"]
        if run is not None and run.status.value == "suspended" and timers:
            return run, timers[0]
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {run_id} never waited on a retry timer: are the workers running?")


def knob(name: str, default: str) -> str:
    return f"{name}={os.environ.get(name, default)}"


async def main() -> None:
    storage = get_storage() or config_to_storage({})
    token = uuid.uuid4().hex[:8]
    run_id = await start(fulfil_order, "A-7", token, runtime="celery", storage=storage)

    run, timer = await wait_for_retry_timer(run_id, storage)
    due = (timer.fire_at - datetime.now(UTC)).total_seconds()
    print(f"[1] reserve_stock attempt 1 failed; the run is {run.status.value}")
    print(f"[1] its retry is a timer row in the storage, due in {due:.1f}s, not a task")

    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    events = await get_workflow_events(run_id, storage=storage)
    failed = next(e for e in events if e.type.value == "step.failed")
    second = next(
        e
        for e in events
        if e.type.value == "step.started"
        and e.data["step_name"] == "reserve_stock"
        and e.data["attempt"] == 2
    )
    waited = (second.timestamp - failed.timestamp).total_seconds()
    print(f"[1] attempt 2 was dispatched {waited:.2f}s after the failure: {result[0]}")

    packs = [
        e
        for e in events
        if e.type.value == "step.completed" and e.data["step_name"] == "pack_parcel"
    ]
    print(f"[2] {result[1]}")
    print(f"[2] pack_parcel outcomes recorded: {len(packs)}")

    run = await get_workflow_run(run_id, storage=storage)
    print(
        f"[3] run {run.status.value}: recover_on_worker_loss={run.recover_on_worker_loss}, "
        f"max_recovery_attempts={run.max_recovery_attempts}, "
        f"recovery_attempts={run.recovery_attempts}"
    )
    print(
        "[3] a workflow worker dying mid-activation: after "
        f"{knob('PYWORKFLOW_LEASE_SECONDS', '30')} the run is taken over, "
        "workflow.interrupted is recorded and the run replays, at most"
        f" {run.max_recovery_attempts} times (recover_on_worker_loss=False: the run fails)"
    )
    print(
        "[3] a step whose worker vanished is sent again after "
        f"{knob('PYWORKFLOW_STEP_REDISPATCH_SECONDS', '300')} (a step with timeout=: timeout"
        " + 60 s); a lost resume or start message is replaced after "
        f"{knob('PYWORKFLOW_RESUME_GUARD_SECONDS', '30')}"
    )


if __name__ == "__main__":
    asyncio.run(main())
