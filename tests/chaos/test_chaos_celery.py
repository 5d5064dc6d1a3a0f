"""Short mode of the Celery chaos scenarios (tests/chaos/scenarios_celery.py): one small
iteration of each, on real Redis, real Celery workers and Beat, SQLite or PostgreSQL.

Each test fails with the scenario's row, its violations and the command that replays
it (``python -m tests.chaos.soak --scenarios NAME --seed SEED --minutes 0``). The seed
is ``PYWORKFLOW_CHAOS_SEED`` (default 1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.chaos.celery_checks import Batch, Outcome, launch, verify
from tests.chaos.celery_world import WF_WORKERS, World
from tests.chaos.scenarios_celery import CELERY_SCENARIOS
from tests.servers import PostgresServer, RedisServer
from tests.support import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(150)]

SEED = int(os.environ.get("PYWORKFLOW_CHAOS_SEED", "1"))


@pytest.fixture(scope="module")
def chaos_redis() -> Iterator[RedisServer]:
    """A Redis of the module's own: the scenarios restart it."""
    with RedisServer.start() as server:
        yield server


@pytest.fixture(scope="module")
def sqlite_world(chaos_redis: RedisServer) -> Iterator[World]:
    world = World(chaos_redis).start()
    try:
        yield world
    finally:
        world.close()


@pytest.fixture(scope="module")
def postgres_world(chaos_redis: RedisServer) -> Iterator[World]:
    """A PostgreSQL of the module's own: the scenarios restart and crash it."""
    with PostgresServer.start() as pg:
        world = World(chaos_redis, pg).start()
        try:
            yield world
        finally:
            world.close()


async def _check(world: World, name: str) -> None:
    scenario, _ = CELERY_SCENARIOS[name]
    await world.blocking(world.repair)  # an earlier test may have left a process dead
    await world.connect()
    try:
        outcome = await scenario(world, SEED)
    finally:
        await world.disconnect()
    outcome.scenario = name
    result = outcome.result()
    print(f"\n{result.summary()}")
    assert result.ok, result.summary()


async def test_celery_sigkill(sqlite_world: World) -> None:
    await _check(sqlite_world, "celery_sigkill")


async def test_celery_duplicates(sqlite_world: World) -> None:
    await _check(sqlite_world, "celery_duplicates")


async def test_celery_two_beats(sqlite_world: World) -> None:
    await _check(sqlite_world, "celery_two_beats")


async def test_celery_redis_restart(sqlite_world: World) -> None:
    await _check(sqlite_world, "celery_redis_restart")


async def test_celery_postgres_restart(postgres_world: World) -> None:
    await _check(postgres_world, "celery_postgres_restart")


async def test_regression_redis_restart_keeps_workflow_workers_holding_a_countdown_resume(
    sqlite_world: World,
) -> None:
    """Found by celery_redis_restart (soak seed 1001): the tick sends resumes with a
    countdown, which a workflow worker reserves (unacknowledged) until due. When Redis
    goes away then, the worker restores that message while closing its broken
    connection, fails with ``Unrecoverable error: AttributeError("'NoneType' object
    has no attribute 'hostname'")`` and exits: no run advances until someone starts
    the workers again. Workers must reconnect by themselves (DISTRIBUTED.md)."""
    world = sqlite_world
    await world.blocking(world.repair)
    await world.connect()
    try:
        # A resume each workflow worker holds, as it holds the tick's countdown resumes.
        for _ in range(2 * len(WF_WORKERS)):
            world.app.send_task(
                "pyworkflow.resume_workflow", kwargs={"run_id": "run_none"}, countdown=60
            )
        wait_until(
            lambda: all("resume_workflow" in world.cluster.log(n) for n in WF_WORKERS),
            timeout=20,
            message="the workflow workers never reserved the countdown resumes",
        )
        connected = {n: world.cluster.log(n).count("Connected to") for n in WF_WORKERS}
        await world.blocking(world.redis.restart)
        wait_until(  # each worker either reconnects or dies; nothing else ends this
            lambda: all(
                world.cluster.log(n).count("Connected to") > connected[n]
                or not world.cluster.alive(n)
                for n in WF_WORKERS
            ),
            timeout=60,
        )
        assert not world.casualties(), world.casualties()
        outcome = Outcome("regression_redis_restart", SEED)
        batch = Batch("after-redis-restart")
        await launch(world, batch, 2)
        await verify(world, outcome, batch.run_ids, batch.expected(), timeout=60)
        result = outcome.result()
        assert result.ok, result.summary()
    finally:
        await world.disconnect()
        await world.blocking(world.repair)
