"""W3: growth with history, on SQLite.

``--shape seq``: one run of K sequential steps, then one short sleep. Reports the
time of the K live steps and of the one resume that replays all K of them.

``--shape loop``: one run looping K times over a step and the shortest sleep that
suspends. Every iteration is a suspension and a resume that replays the history so
far; reports the total time, the cost per iteration and the first vs last resume.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from wl_common import emit, ends_median, engine, parser

args_parser = parser(__doc__)
args_parser.add_argument("--shape", choices=["seq", "loop"], required=True)
args_parser.add_argument("--k", type=int, required=True)
ARGS = args_parser.parse_args()
api = engine(ARGS.engine)


@api.step()
async def add_one(x: int) -> int:
    return x + 1


@api.workflow(name="bench_w3_seq")
async def sequential(k: int, nap: float) -> int:
    x = 0
    for _ in range(k):
        x = await add_one(x)
    await api.sleep(nap)
    return x


@api.workflow(name="bench_w3_loop")
async def looping(k: int, nap: float) -> int:
    x = 0
    for _ in range(k):
        x = await add_one(x)
        await api.sleep(nap)
    return x


async def one_run(storage: object, waker: object, func: object) -> tuple[float, float]:
    """Start a run, drive it to its end; (seconds until start() returned, total)."""
    began = time.perf_counter()
    run_id = await api.start_run(func, ARGS.k, api.SHORTEST_SLEEP, storage=storage)
    started = time.perf_counter() - began

    async def done() -> bool:
        return await api.finished(run_id, storage)

    await waker.finish([run_id], done)
    total = time.perf_counter() - began
    value = await api.result(run_id, storage)
    if value != ARGS.k:
        raise AssertionError(f"run returned {value!r}, expected {ARGS.k}")
    return started, total


async def main() -> None:
    storage = await api.open_storage(ARGS.store)
    waker = api.Waker(storage)
    func = sequential if ARGS.shape == "seq" else looping
    # Untimed warm-up of the same shape with a tiny K: imports, schema, statements.
    k, ARGS.k = ARGS.k, 2
    await one_run(storage, waker, func)
    ARGS.k = k
    waker.durations.clear()
    started, total = await one_run(storage, waker, func)
    resumes_ms = [d * 1000 for d in waker.durations]
    first, last = ends_median(resumes_ms)
    await api.close_storage(storage)
    emit(
        {
            "engine": api.NAME,
            "shape": ARGS.shape,
            "k": ARGS.k,
            "wake_mode": api.WAKE_MODE,
            "sleep_s": api.SHORTEST_SLEEP,
            "start_s": started,
            "total_s": total,
            # seq: the K live steps; loop: everything, sleeps and timer latency included.
            "per_iteration_ms": (started if ARGS.shape == "seq" else total) * 1000 / ARGS.k,
            "resumes": len(resumes_ms),
            "first_resume_ms": first,
            "last_resume_ms": last,
            "mean_resume_ms": statistics.fmean(resumes_ms) if resumes_ms else float("nan"),
        }
    )


asyncio.run(main())
