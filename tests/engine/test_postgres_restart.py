"""PostgreSQL stops in the middle of a batch of runs and comes back: nothing is lost.

Fifty runs start 10 ms apart; each runs a step, sleeps, then runs two more steps.
0.45 s in, the server is stopped (clean shutdown: every session is cut,
commits in flight included) and started again half a second later. At that moment
runs are in every phase: not created yet, inside a step, committing, asleep, done.
Storage operations wait for the server (reconnect_timeout), so the same process
carries every run to completion, and each step body runs exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from pyworkflow import sleep, start, step, workflow
from pyworkflow.engine.events import dedup_key
from pyworkflow.runtime import timer_service
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.schemas import RunStatus
from tests.servers import PostgresServer
from tests.support import eventually

RUNS = 50
BODIES: collections.Counter[str] = collections.Counter()


@step(name="pg_restart_reserve")
async def reserve(i: int) -> int:
    BODIES[f"reserve:{i}"] += 1
    return i


@step(name="pg_restart_charge")
async def charge(i: int) -> int:
    BODIES[f"charge:{i}"] += 1
    await asyncio.sleep(0.05)  # long enough for the outage to catch some mid-step
    return 2 * i


@step(name="pg_restart_ship")
async def ship(i: int) -> int:
    BODIES[f"ship:{i}"] += 1
    return 3 * i


@workflow(name="pg_restart", durable=True)
async def order(i: int) -> int:
    total = await reserve(i)
    await sleep(0.3)
    total += await charge(i)
    return total + await ship(i)


async def _start_staggered(storage: PostgresStorageBackend) -> list[asyncio.Task[str]]:
    tasks = []
    for i in range(RUNS):
        tasks.append(
            asyncio.create_task(start(order, i, storage=storage, idempotency_key=f"order-{i}"))
        )
        await asyncio.sleep(0.01)
    return tasks


@pytest.mark.slow
async def test_runs_survive_a_server_restart(pg_dsn: str, postgres_server: PostgresServer) -> None:
    BODIES.clear()
    storage = PostgresStorageBackend(dsn=pg_dsn)
    await storage.connect()
    try:
        starter = asyncio.create_task(_start_staggered(storage))
        await asyncio.sleep(0.45)  # the first sleeps are over, the last runs not started
        down = time.perf_counter()
        await asyncio.to_thread(postgres_server.stop)
        phases = collections.Counter(key.split(":")[0] for key in BODIES)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(postgres_server.restart)
        outage = time.perf_counter() - down
        run_ids = await asyncio.gather(*await starter)  # no start() failed

        async def all_completed() -> bool:
            runs = [await storage.get_run(run_id) for run_id in run_ids]
            return all(r is not None and r.status is RunStatus.COMPLETED for r in runs)

        await eventually(all_completed, timeout=30, message="runs did not all complete")
        for i, run_id in enumerate(run_ids):
            events = await storage.get_events(run_id)
            assert [e.sequence for e in events] == list(range(len(events)))
            keys = [k for k in map(dedup_key, events) if k is not None]
            assert len(keys) == len(set(keys))
            assert [e.type.value for e in events].count("step.completed") == 3
            run = await storage.get_run(run_id)
            assert run is not None and run.result == str(6 * i)
        assert await storage.list_timers() == []
    finally:
        await timer_service(storage).stop()
        postgres_server.ensure_running()
        await storage.disconnect()
    # Every step body ran exactly once, across the outage.
    assert set(BODIES.values()) == {1} and len(BODIES) == 3 * RUNS
    # The outage really hit a batch in flight: runs in every phase.
    assert 0 < phases["reserve"] < RUNS and phases["charge"] > 0, phases
    assert phases["ship"] < RUNS, phases
    print(f"\noutage {outage:.2f}s; step bodies run before it: {dict(phases)}")
