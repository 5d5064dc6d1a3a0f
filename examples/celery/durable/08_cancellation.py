"""Cancellation on Celery: stop a run from any process and let it clean up after itself.

The twin of ``examples/local/durable/08_cancellation.py``. With Redis, the workers and
Beat of ../README.md running, run from the repository root:

    python examples/celery/durable/08_cancellation.py

``cancel_workflow(run_id)`` records ``cancellation.requested`` in the shared storage;
a run that waits (a sleep, a hook, a step on a step worker) is sent a resume at once
(this script calls ``configure(default_runtime="celery")`` for that), with a ``wake``
timer row in case the message is lost. The run sees the request at its next durable
call, where ``CancellationError`` is raised:

1. A trip-booking saga has booked a flight and a hotel and sleeps until check-in
   opens ("1h"). It is cancelled: a workflow worker wakes it, the sleep raises
   ``CancellationError``, and the workflow undoes the bookings in reverse order inside
   ``shield()`` (its compensation steps run on the step workers), then re-raises: the
   run is CANCELLED. The car is never booked.
2. A long export step on a step worker checks ``get_context().check_cancellation()``
   between chunks of work. While a step runs, its worker looks for a request about
   once a second (``PYWORKFLOW_CANCEL_POLL_SECONDS``), so the step stops soon after
   the request instead of running to the end. It reports its progress in the broker's
   Redis, which this script reads.
3. Cancelling a run that has already ended returns False and records nothing.
"""

import asyncio
import time
import uuid

import redis

from pyworkflow import (
    CancellationError,
    cancel_workflow,
    configure,
    get_context,
    get_storage,
    get_workflow_events,
    get_workflow_run,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.celery.app import resolve_broker_url
from pyworkflow.storage.config import config_to_storage

# ----------------------------------------------------------------- 1. a saga


@step
async def book_flight(trip: str) -> str:
    return f"FL-{trip}"


@step
async def book_hotel(trip: str) -> str:
    return f"HT-{trip}"


@step
async def book_car(trip: str) -> str:
    return f"CR-{trip}"


@step
async def cancel_booking(booking: str) -> str:
    return f"cancelled {booking}"


@workflow
async def book_trip(trip: str) -> list[str]:
    booked: list[str] = []  # what to undo, in booking order
    try:
        for book in (book_flight, book_hotel):
            booked.append(await book(trip))
        await sleep("1h")  # until check-in opens
        booked.append(await book_car(trip))
        return booked
    except CancellationError:
        # Without shield() these steps would raise CancellationError too.
        async with shield():
            for booking in reversed(booked):
                await cancel_booking(booking)
        raise  # the run ends CANCELLED


def detail(data: dict) -> str:
    if "result" in data:  # step.completed: the step's result, as recorded (JSON)
        return f"{data['step_name']} -> {data['result']}"
    if "step_name" in data:
        return data["step_name"]
    if "cleanup_completed" in data:
        return f"reason={data['reason']!r} cleanup_completed={data['cleanup_completed']}"
    return f"reason={data['reason']!r}" if "reason" in data else ""


async def wait_for(run_id: str, storage, check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await get_workflow_run(run_id, storage=storage)
        events = [e.type.value for e in await get_workflow_events(run_id, storage=storage)]
        if run is not None and check(run.status.value, events):
            return run
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {run_id} never {what}: are the workers and Beat running?")


async def saga(storage) -> str:
    run_id = await start(book_trip, "T-7", runtime="celery", storage=storage)
    await wait_for(
        run_id, storage, lambda s, ev: s == "suspended" and "sleep.started" in ev, "slept"
    )
    print("[1] flight and hotel booked; the run sleeps until check-in opens")
    began = time.monotonic()
    ok = await cancel_workflow(
        run_id, reason="customer changed plans", wait=True, timeout=30, storage=storage
    )
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[1] cancel_workflow -> {ok}; {run.status.value} {time.monotonic() - began:.2f}s later")
    print("[1] events:")
    for event in await get_workflow_events(run_id, storage=storage):
        print(f"      {event.type.value:24} {detail(event.data)}".rstrip())
    return run_id


# ----------------------------------------------------------------- 2. a cooperative step


def progress_key(job: str) -> str:
    return f"pyworkflow-example-08:{job}"


@step
async def export_rows(job: str, chunks: int) -> int:
    with redis.Redis.from_url(resolve_broker_url()) as client:
        try:
            for done in range(chunks):
                # Raises CancellationError once the run was cancelled.
                get_context().check_cancellation()
                client.set(progress_key(job), f"running {done}", ex=600)
                await asyncio.sleep(0.1)  # one chunk of real work
        except CancellationError:
            client.set(progress_key(job), f"stopped {done} {time.time()}", ex=600)
            raise
    return chunks


@workflow
async def nightly_export(job: str) -> int:
    return await export_rows(job, 100)  # 10 s if left alone


def progress(job: str) -> list[str]:
    with redis.Redis.from_url(resolve_broker_url()) as client:
        value = client.get(progress_key(job))
    return value.decode().split() if value is not None else []


async def cooperative(storage) -> None:
    job = uuid.uuid4().hex[:8]
    run_id = await start(nightly_export, job, runtime="celery", storage=storage)
    deadline = time.monotonic() + 60
    while not progress(job) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # until the step runs on a step worker
    requested = time.time()
    await cancel_workflow(run_id, reason="maintenance window", storage=storage)
    run = await wait_for(run_id, storage, lambda s, ev: s == "cancelled", "was cancelled")
    print(f"[2] status: {run.status.value} {time.time() - requested:.2f}s after the request")
    while progress(job)[0] != "stopped" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    _, done, stopped = progress(job)
    print(
        f"[2] the export step stopped after {int(done)} of 100 chunks, "
        f"{float(stopped) - requested:.1f}s after the request (alone it needs 10s)"
    )


async def main() -> None:
    # The storage the workers use (PYWORKFLOW_STORAGE_* or pyworkflow.config.yaml);
    # cancel_workflow wakes waiting runs through the default runtime, so make it Celery.
    storage = get_storage() or config_to_storage({})
    configure(default_runtime="celery", storage=storage)
    trip = await saga(storage)
    await cooperative(storage)
    again = await cancel_workflow(trip, storage=storage)
    print(f"[3] cancelling the trip again -> {again} (it had already ended)")


if __name__ == "__main__":
    asyncio.run(main())
