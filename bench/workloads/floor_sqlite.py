"""Floor of W1/W3: bare SQLite commits with our durability settings.

Plain ``sqlite3``, in this thread: WAL, ``synchronous=FULL``, one ``BEGIN IMMEDIATE``
transaction per step inserting 2 rows (what a durable step must write at least: its
start and its result). Nothing else runs, so no engine can be faster on this disk.

For the profile's breakdown, the same commits can also be made:

* ``--schema ours``: rows shaped like ours (ids, timestamps, JSON of the same sizes)
  into our real ``events`` table, created by our SQLite backend;
* ``--via aiosqlite``: from an event loop through aiosqlite, three awaits per commit
  (``BEGIN``, the inserts, ``COMMIT``) as our backend does;
* ``--via thread``: from an event loop, the whole transaction in one hop to a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--store", required=True)
p.add_argument("--runs", type=int, default=200)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--schema", choices=["minimal", "ours"], default="minimal")
p.add_argument("--via", choices=["sqlite3", "aiosqlite", "thread"], default="sqlite3")
ARGS = p.parse_args()
MINIMAL = (
    "CREATE TABLE events (run_id TEXT NOT NULL, sequence INTEGER NOT NULL, type TEXT,"
    " data TEXT, created_at TEXT, PRIMARY KEY (run_id, sequence))"
)
INSERT = {
    "minimal": "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
    "ours": "INSERT INTO events (run_id, sequence, event_id, type, timestamp, data, dedup_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
}[ARGS.schema]


def create_schema() -> None:
    if ARGS.schema == "minimal":
        sqlite3.connect(ARGS.store, isolation_level=None).execute(MINIMAL).connection.close()
        return
    from pyworkflow.storage.sqlite import SQLiteStorageBackend

    async def create() -> None:
        storage = SQLiteStorageBackend(ARGS.store)
        await storage.connect()
        await storage.disconnect()

    asyncio.run(create())


def rows(run_id: str, step: int) -> list[tuple[object, ...]]:
    now = datetime.now(UTC).isoformat()
    if ARGS.schema == "minimal":
        return [
            (run_id, 2 * step, "step.started", "{}", now),
            (run_id, 2 * step + 1, "step.completed", '{"r":1}', now),
        ]
    sid = f"step_add_one_{uuid.uuid4().hex[:16]}"
    started = {"step_id": sid, "step_name": "add_one", "args": f"[{step}]", "kwargs": "{}"}
    done = {"step_id": sid, "result": str(step + 1), "step_name": "add_one"}
    return [
        (run_id, 2 * step + 1, f"evt_{uuid.uuid4().hex[:16]}", "step.started", now,
         json.dumps({**started, "attempt": 1, "position": step + 1}), None),
        (run_id, 2 * step + 2, f"evt_{uuid.uuid4().hex[:16]}", "step.completed", now,
         json.dumps(done), f"step.outcome:{sid}"),
    ]  # fmt: skip


def connect() -> sqlite3.Connection:
    db = sqlite3.connect(ARGS.store, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    return db


def commit(db: sqlite3.Connection, run_id: str, step: int) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.executemany(INSERT, rows(run_id, step))
    db.execute("COMMIT")


async def from_loop() -> None:
    if ARGS.via == "thread":
        db, pool = connect(), ThreadPoolExecutor(1)
        loop = asyncio.get_running_loop()
        for run in range(ARGS.runs):
            for step in range(ARGS.steps):
                await loop.run_in_executor(pool, commit, db, f"run_{run:08d}", step)
        db.close()
        return
    import aiosqlite

    adb = await aiosqlite.connect(ARGS.store, isolation_level=None)
    await adb.execute("PRAGMA journal_mode = WAL")
    await adb.execute("PRAGMA synchronous = FULL")
    for run in range(ARGS.runs):
        for step in range(ARGS.steps):
            await adb.execute("BEGIN IMMEDIATE")
            await adb.executemany(INSERT, rows(f"run_{run:08d}", step))
            await adb.execute("COMMIT")
    await adb.close()


create_schema()
began = time.perf_counter()
if ARGS.via == "sqlite3":
    db = connect()
    for run in range(ARGS.runs):
        for step in range(ARGS.steps):
            commit(db, f"run_{run:08d}", step)
    db.close()
else:
    asyncio.run(from_loop())
seconds = time.perf_counter() - began
commits = ARGS.runs * ARGS.steps
print(
    json.dumps(
        {
            "engine": "floor",
            "schema": ARGS.schema,
            "via": ARGS.via,
            "commits": commits,
            "seconds": seconds,
            "ms_per_step": seconds * 1000 / commits,
            "runs_per_s": ARGS.runs / seconds,
            "sqlite": sqlite3.sqlite_version,
        }
    )
)
