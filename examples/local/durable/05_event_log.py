"""Read a run's event log: the whole truth of a durable run, in order.

Run from the repository root:

    python examples/local/durable/05_event_log.py

The workflow below makes a step call, retries a failing step once, sleeps, and
finishes; every one of those moments is an event with a sequence number (from 0),
a type such as ``step.completed`` and a ``data`` dict. Results and arguments are
stored as JSON text. Storage is configured once with ``configure()``.
"""

import asyncio
import tempfile
from pathlib import Path

from pyworkflow import (
    SQLiteStorageBackend,
    configure,
    get_workflow_events,
    get_workflow_result,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.engine.events import Event

attempts = 0


@step
async def load_report(report_id: int) -> dict:
    return {"id": report_id, "rows": 120}


@step(max_retries=2, retry_delay=0.5)
async def render_pdf(report: dict) -> str:
    global attempts
    attempts += 1
    if attempts == 1:
        raise TimeoutError("renderer busy")
    return f"report-{report['id']}.pdf"


@workflow
async def monthly_report(report_id: int) -> str:
    report = await load_report(report_id)
    pdf = await render_pdf(report)
    await sleep(0.5, name="wait-for-office-hours")
    return pdf


def describe(event: Event) -> str:
    """The interesting part of each event type's payload, on one line."""
    d = event.data
    kind = event.type.value
    if kind == "workflow.started":
        return f"{d['workflow_name']} args={d['args']} kwargs={d['kwargs']}"
    if kind == "step.started":
        return f"{d['step_name']} attempt {d['attempt']} args={d['args']}"
    if kind == "step.completed":
        return f"{d['step_name']} -> {d['result']}"
    if kind == "step.failed":
        return f"attempt {d['attempt']}: {d['error_type']}: {d['error']}"
    if kind == "step.retrying":
        return f"attempt {d['attempt']} at {d['resume_at'][11:23]} ({d['retry_strategy']})"
    if kind == "sleep.started":
        return f"{d['sleep_id']} ({d['name']}) until {d['resume_at'][11:23]}"
    if kind == "sleep.completed":
        return d["sleep_id"]
    if kind == "workflow.completed":
        return f"result={d['result']}"
    return ", ".join(f"{k}={v}" for k, v in d.items() if k != "traceback")


async def main() -> None:
    db_path = Path(tempfile.mkdtemp()) / "events.db"
    configure(storage=SQLiteStorageBackend(str(db_path)), default_durable=True)

    run_id = await start(monthly_report, 42)
    result = await get_workflow_result(run_id, wait=True, timeout=30)
    print(f"run {run_id} returned {result!r}\n")

    events = await get_workflow_events(run_id)
    t0 = events[0].timestamp
    print(f"{'seq':>3}  {'time':>7}  {'type':<20} data")
    for event in events:
        offset = (event.timestamp - t0).total_seconds()
        print(f"{event.sequence:>3}  {offset:>6.2f}s  {event.type.value:<20} {describe(event)}")


if __name__ == "__main__":
    asyncio.run(main())
