"""W5 (local part): many runs suspended on sleeps, in SQLite.

``--phase park``: start N runs that sleep one hour. Reports the storage size and this
process's RSS before and after starting them, and after idling while they sleep.

``--phase prepare``: start N runs that sleep briefly, with this process's timers held,
and write their ids to ``--ids``. ``--phase resume`` (a fresh process, as a restarted
worker) waits until those sleeps are due, then wakes every run and reports resumes/s.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time

from wl_common import emit, engine, files_bytes, parser, rss_mb

args_parser = parser(__doc__)
args_parser.add_argument("--phase", choices=["park", "prepare", "resume"], required=True)
args_parser.add_argument("--runs", type=int, required=True)
args_parser.add_argument("--ids", help="file of run ids (prepare writes, resume reads)")
args_parser.add_argument("--idle", type=float, default=3.0, help="park: seconds to idle")
ARGS = args_parser.parse_args()
api = engine(ARGS.engine)
WOKEN = [0]
#: prepare: a sleep both engines keep (upstream truncates to whole seconds).
NAP = 1


@api.step()
async def add_one(x: int) -> int:
    return x + 1


@api.workflow(name="bench_w5")
async def sleeper(nap: str | int) -> int:
    x = await add_one(0)
    await api.sleep(nap)
    WOKEN[0] += 1
    return x


def settled_rss() -> float:
    gc.collect()
    return rss_mb()


async def start_all(storage: object, nap: str | int) -> tuple[list[str], float]:
    began = time.perf_counter()
    run_ids = [await api.start_run(sleeper, nap, storage=storage) for _ in range(ARGS.runs)]
    return run_ids, time.perf_counter() - began


async def park(storage: object) -> dict[str, object]:
    await api.start_run(sleeper, "1h", storage=storage)  # warm-up, not counted
    before = settled_rss()
    _, seconds = await start_all(storage, "1h")
    after = settled_rss()
    await asyncio.sleep(ARGS.idle)  # ours: the timer service keeps polling meanwhile
    idle = settled_rss()
    return {
        "start_s": seconds,
        "starts_per_s": ARGS.runs / seconds,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_idle_mb": idle,
        "rss_growth_kb_per_run": (idle - before) * 1024 / ARGS.runs,
    }


async def prepare(storage: object) -> dict[str, object]:
    await api.hold_timers(storage)
    run_ids, seconds = await start_all(storage, NAP)
    with open(ARGS.ids, "w") as out:
        json.dump({"run_ids": run_ids, "due_at": time.time() + NAP}, out)
    return {"start_s": seconds, "starts_per_s": ARGS.runs / seconds}


async def resume(storage: object) -> dict[str, object]:
    with open(ARGS.ids) as ids:
        prepared = json.load(ids)
    run_ids = prepared["run_ids"]
    await asyncio.sleep(max(0.0, prepared["due_at"] - time.time()))
    before = settled_rss()
    began = time.perf_counter()
    waker = api.Waker(storage)

    async def done() -> bool:
        return WOKEN[0] >= len(run_ids)

    await waker.finish(run_ids, done)
    seconds = time.perf_counter() - began
    after = settled_rss()
    for run_id in run_ids[:: max(1, len(run_ids) // 50)]:
        if await api.result(run_id, storage) != 1:
            raise AssertionError(f"run {run_id} did not complete with 1")
    return {
        "resume_s": seconds,
        "resumes_per_s": len(run_ids) / seconds,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "mean_resume_ms": statistics.fmean(waker.durations) * 1000,
        "wake_mode": api.WAKE_MODE,
    }


async def main() -> None:
    storage = await api.open_storage(ARGS.store)
    phase = {"park": park, "prepare": prepare, "resume": resume}[ARGS.phase]
    result = await phase(storage)
    await api.close_storage(storage)
    if ARGS.phase == "park":
        # Measured closed: our last connection checkpoints the WAL into the file.
        size = files_bytes(ARGS.store)
        result.update(db_bytes=size, bytes_per_run=size / (ARGS.runs + 1))
    emit({"engine": api.NAME, "phase": ARGS.phase, "runs": ARGS.runs, **result})


asyncio.run(main())
