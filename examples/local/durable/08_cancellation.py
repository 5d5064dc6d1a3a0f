"""Cancellation: stop a run and let it clean up after itself.

Run from the repository root:

    python examples/local/durable/08_cancellation.py

``cancel_workflow(run_id)`` records a ``cancellation.requested`` event. The run sees it
at its next durable call (a step, a sleep, a hook), where ``CancellationError`` is
raised. Three situations:

1. A trip-booking saga is cancelled while it books the hotel. The hotel booking
   finishes (a step is not interrupted half-way), the car is never booked, and the
   workflow's ``except CancellationError`` undoes the bookings in reverse order inside
   ``shield()`` (so its own steps may still run), then re-raises: the run is CANCELLED.
2. A run sleeping for an hour is cancelled: it is woken at once and is CANCELLED
   before ``cancel_workflow`` returns.
3. A long step checks ``get_context().check_cancellation()`` between chunks of work,
   so it stops soon after the request instead of running to the end.
"""

import asyncio
import tempfile
import time
from pathlib import Path

from pyworkflow import (
    CancellationError,
    SQLiteStorageBackend,
    cancel_workflow,
    get_context,
    get_workflow_events,
    get_workflow_run,
    shield,
    sleep,
    start,
    step,
    workflow,
)

# Set by a step once it runs, so main() knows when and what to cancel.
step_running = asyncio.Event()
running_run_id = ""


def announce() -> None:
    global running_run_id
    running_run_id = get_context().run_id
    step_running.set()


# ----------------------------------------------------------------- 1. a saga


@step
async def book_flight(trip: str) -> str:
    return f"FL-{trip}"


@step
async def book_hotel(trip: str) -> str:
    announce()
    await asyncio.sleep(0.3)  # the hotel's API is slow; cancel_workflow arrives meanwhile
    return f"HT-{trip}"


@step
async def book_car(trip: str) -> str:
    return f"CR-{trip}"


@step
async def cancel_booking(booking: str) -> str:
    print(f"    compensation: cancelled {booking}")
    return booking


@workflow
async def book_trip(trip: str) -> list[str]:
    booked: list[str] = []  # what to undo, in booking order
    try:
        for book in (book_flight, book_hotel, book_car):
            booked.append(await book(trip))
        return booked
    except CancellationError:
        # Without shield() these steps would raise CancellationError too.
        async with shield():
            for booking in reversed(booked):
                await cancel_booking(booking)
        raise  # the run ends CANCELLED


def detail(data: dict) -> str:
    if "step_name" in data:
        return data["step_name"]
    if "cleanup_completed" in data:
        return f"reason={data['reason']!r} cleanup_completed={data['cleanup_completed']}"
    return f"reason={data['reason']!r}" if "reason" in data else ""


async def saga(storage: SQLiteStorageBackend) -> None:
    print("[1] cancel a saga while a step runs")
    step_running.clear()
    task = asyncio.create_task(start(book_trip, "T-7", durable=True, storage=storage))
    await step_running.wait()
    run_id = running_run_id
    accepted = await cancel_workflow(run_id, reason="customer changed plans", storage=storage)
    print(f"[1] cancel_workflow() while book_hotel runs -> {accepted}")

    await task  # start() returns the run id; a cancelled run is not an error
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[1] status: {run.status.value}")
    events = await get_workflow_events(run_id, storage=storage)
    print("[1] events:")
    for event in events:
        print(f"      {event.type.value:24} {detail(event.data)}".rstrip())


# ----------------------------------------------------------------- 2. a sleeping run


@step
async def send_reminder(user: str) -> str:
    return f"reminder sent to {user}"


@workflow
async def remind_later(user: str) -> str:
    await sleep("1h")
    return await send_reminder(user)


async def sleeping(storage: SQLiteStorageBackend) -> None:
    print("[2] cancel a run that sleeps for an hour")
    run_id = await start(remind_later, "ada", durable=True, storage=storage)
    print(f"[2] after start(): {(await get_workflow_run(run_id, storage=storage)).status.value}")
    began = time.monotonic()
    await cancel_workflow(run_id, reason="user unsubscribed", storage=storage)
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[2] status right after cancel_workflow: {run.status.value}")
    print(f"[2] took {time.monotonic() - began:.1f}s, not an hour")
    again = await cancel_workflow(run_id, storage=storage)
    print(f"[2] cancelling it again -> {again} (it had already ended)")


# ----------------------------------------------------------------- 3. a cooperative step


@step
async def export_rows(chunks: int) -> int:
    announce()
    for _ in range(chunks):
        # Raises CancellationError once the run was cancelled; the engine looks for a
        # request about once a second (PYWORKFLOW_CANCEL_POLL_SECONDS) while a step runs.
        get_context().check_cancellation()
        await asyncio.sleep(0.1)  # one chunk of real work
    return chunks


@workflow
async def nightly_export() -> int:
    return await export_rows(100)  # 10 s if left alone


async def cooperative(storage: SQLiteStorageBackend) -> None:
    print("[3] cancel a long step that checks for cancellation")
    step_running.clear()
    began = time.monotonic()
    task = asyncio.create_task(start(nightly_export, durable=True, storage=storage))
    await step_running.wait()
    await cancel_workflow(running_run_id, reason="maintenance window", storage=storage)
    await task
    run = await get_workflow_run(running_run_id, storage=storage)
    elapsed = time.monotonic() - began
    print(f"[3] status: {run.status.value} after {elapsed:.1f}s (the step alone needs 10s)")


async def main() -> None:
    storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "cancel.db"))
    await saga(storage)
    await sleeping(storage)
    await cooperative(storage)


if __name__ == "__main__":
    asyncio.run(main())
