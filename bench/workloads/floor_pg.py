"""Floor of W2: bare asyncpg transactions of 2 inserts, one per step, on one
connection to the same server (what a durable step must write at least)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import asyncpg

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--store", required=True, help="postgresql:// DSN of an empty database")
p.add_argument("--runs", type=int, default=200)
p.add_argument("--steps", type=int, default=10)
ARGS = p.parse_args()


async def main() -> None:
    conn = await asyncpg.connect(ARGS.store)
    await conn.execute(
        "CREATE TABLE events (run_id TEXT NOT NULL, sequence INTEGER NOT NULL, type TEXT,"
        " data TEXT, created_at DOUBLE PRECISION, PRIMARY KEY (run_id, sequence))"
    )
    insert = "INSERT INTO events VALUES ($1, $2, $3, $4, $5)"
    began = time.perf_counter()
    for run in range(ARGS.runs):
        run_id = f"run_{run:08d}"
        for step in range(ARGS.steps):
            async with conn.transaction():
                await conn.execute(insert, run_id, 2 * step, "step.started", "{}", time.time())
                await conn.execute(
                    insert, run_id, 2 * step + 1, "step.completed", '{"r":1}', time.time()
                )
    seconds = time.perf_counter() - began
    await conn.close()
    commits = ARGS.runs * ARGS.steps
    print(
        json.dumps(
            {
                "engine": "floor",
                "commits": commits,
                "seconds": seconds,
                "ms_per_step": seconds * 1000 / commits,
                "runs_per_s": ARGS.runs / seconds,
            }
        )
    )


asyncio.run(main())
