"""W1 (SQLite) and W2 (PostgreSQL): RUNS durable runs, one after another, of a workflow
of STEPS trivial steps on the local runtime. Reports runs/s and ms per step."""

from __future__ import annotations

import asyncio
import time

from wl_common import emit, engine, parser, profiled

args_parser = parser(__doc__)
args_parser.add_argument("--runs", type=int, default=200)
args_parser.add_argument("--steps", type=int, default=10)
args_parser.add_argument("--profile", help="write a cProfile of the timed runs here")
ARGS = args_parser.parse_args()
api = engine(ARGS.engine)


@api.step()
async def add_one(x: int) -> int:
    return x + 1


@api.workflow(name="bench_w1")
async def chain(x: int, steps: int) -> int:
    for _ in range(steps):
        x = await add_one(x)
    return x


async def main() -> None:
    storage = await api.open_storage(ARGS.store)
    # One untimed run: schema, prepared statements and first-call imports.
    await api.run(chain, -1, ARGS.steps, storage=storage)
    with profiled(ARGS.profile):
        began = time.perf_counter()
        for i in range(ARGS.runs):
            value = await api.run(chain, i * 1000, ARGS.steps, storage=storage)
            if value != i * 1000 + ARGS.steps:
                raise AssertionError(f"run {i} returned {value!r}")
        seconds = time.perf_counter() - began
    await api.close_storage(storage)
    emit(
        {
            "engine": api.NAME,
            "runs": ARGS.runs,
            "steps": ARGS.steps,
            "seconds": seconds,
            "runs_per_s": ARGS.runs / seconds,
            "ms_per_step": seconds * 1000 / (ARGS.runs * ARGS.steps),
        }
    )


asyncio.run(main())
