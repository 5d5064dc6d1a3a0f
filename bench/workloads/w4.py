"""W4: durable runs on the Celery runtime, started from this client process.

The harness has started Redis and the engine's workers; this script only starts runs
with ``start(..., runtime="celery")`` and reads the outcome from the storage.

``--phase throughput``: WARMUP untimed runs, then RUNS runs of a STEPS-step workflow
started at once. Per run: latency = the run's ``completed_at`` (written by a worker)
- the moment this client called ``start()`` for it. runs/s = RUNS / (last completion -
first submit).

``--phase sleep``: SLEEPERS runs doing ``await sleep(SLEEP)``, started at once. Per run:
lateness = the ``sleep.completed`` event's timestamp - the ``resume_at`` recorded with
``sleep.started`` (negative: the sleep ended early); slept = ``sleep.completed`` -
``sleep.started``, how long the sleep really lasted.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

from wl_common import emit, engine, parser

args_parser = parser(__doc__)
args_parser.add_argument("--broker", required=True)
args_parser.add_argument("--backend", required=True)
args_parser.add_argument("--phase", choices=["throughput", "sleep"], required=True)
args_parser.add_argument("--runs", type=int, default=100)
args_parser.add_argument("--steps", type=int, default=5)
args_parser.add_argument("--warmup", type=int, default=4)
args_parser.add_argument("--sleepers", type=int, default=20)
args_parser.add_argument("--sleep", default="2s")
args_parser.add_argument("--timeout", type=float, default=120)
ARGS = args_parser.parse_args()
# Both engines read the broker from the environment (upstream when its app is imported).
os.environ["PYWORKFLOW_CELERY_BROKER"] = ARGS.broker
os.environ["PYWORKFLOW_CELERY_RESULT_BACKEND"] = ARGS.backend
api = engine(ARGS.engine)

import w4_flows  # noqa: E402  (after the broker is set)

from pyworkflow import start  # noqa: E402

_TERMINAL = {"completed", "failed", "cancelled", "continued_as_new"}


def _epoch(moment: datetime) -> float:
    """Seconds since the epoch; a naive datetime read back from storage is UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def submit(storage: Any, func: Any, *args: Any) -> tuple[str, float]:
    submitted = time.time()
    run_id = await start(func, *args, runtime="celery", durable=True, storage=storage)
    return run_id, submitted


async def wait_all(storage: Any, run_ids: list[str], deadline: float) -> list[Any]:
    """Every run's record once it ended, in order; polls gently (the workers share the
    storage, and the times measured are the workers' own, not this poll's)."""
    done = []
    for run_id in run_ids:
        while True:
            run = await storage.get_run(run_id)
            if run is not None and run.status.value in _TERMINAL:
                break
            if time.monotonic() > deadline:
                missing = len(run_ids) - len(done)
                raise TimeoutError(f"{missing} of {len(run_ids)} runs unfinished")
            await asyncio.sleep(0.1)
        if run.status.value != "completed":
            raise RuntimeError(f"run {run_id} ended {run.status.value}: {run.error}")
        done.append(run)
    return done


async def batch(storage: Any, count: int, first: int) -> list[tuple[float, float]]:
    """(submitted, completed) of ``count`` chains started at once, values checked."""
    started = await asyncio.gather(
        *(
            submit(storage, w4_flows.chain, i * 1000, ARGS.steps)
            for i in range(first, first + count)
        )
    )
    runs = await wait_all(storage, [r for r, _ in started], time.monotonic() + ARGS.timeout)
    for i, (run_id, _) in enumerate(started, start=first):
        value = await api.result(run_id, storage)
        if value != i * 1000 + ARGS.steps:
            raise AssertionError(f"run {run_id} returned {value!r}")
    return [(s, _epoch(run.completed_at)) for (_, s), run in zip(started, runs, strict=True)]


async def throughput(storage: Any) -> dict[str, Any]:
    await batch(storage, ARGS.warmup, ARGS.runs)  # untimed: connections, first tasks
    times = await batch(storage, ARGS.runs, 0)
    first = min(s for s, _ in times)
    span = max(c for _, c in times) - first
    return {
        "runs": ARGS.runs,
        "steps": ARGS.steps,
        "span_s": span,
        "runs_per_s": ARGS.runs / span,
        "latencies_ms": [(c - s) * 1000 for s, c in times],
    }


async def lateness(storage: Any) -> dict[str, Any]:
    started = await asyncio.gather(
        *(submit(storage, w4_flows.nap, ARGS.sleep) for _ in range(ARGS.sleepers))
    )
    run_ids = [r for r, _ in started]
    await wait_all(storage, run_ids, time.monotonic() + ARGS.timeout)
    late, slept = [], []
    for run_id in run_ids:
        events = await storage.get_events(run_id)
        began = [e for e in events if e.type.value == "sleep.started"]
        ended = [e for e in events if e.type.value == "sleep.completed"]
        if len(began) != 1 or len(ended) != 1:
            raise AssertionError(f"run {run_id}: {len(began)} sleep.started, {len(ended)} ended")
        due = datetime.fromisoformat(began[0].data["resume_at"])
        late.append((_epoch(ended[0].timestamp) - _epoch(due)) * 1000)
        slept.append((_epoch(ended[0].timestamp) - _epoch(began[0].timestamp)) * 1000)
    return {"sleepers": ARGS.sleepers, "sleep": ARGS.sleep, "lateness_ms": late, "slept_ms": slept}


async def main() -> None:
    storage = await api.open_storage(ARGS.store)
    try:
        phase = throughput if ARGS.phase == "throughput" else lateness
        result = await phase(storage)
    finally:
        await api.close_storage(storage)
    emit({"engine": api.NAME, "phase": ARGS.phase, **result})


asyncio.run(main())
