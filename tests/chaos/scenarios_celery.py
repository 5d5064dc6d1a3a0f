"""Celery chaos scenarios: faults injected into a running :class:`World` (real Redis,
real workers and Beat, real SQLite or PostgreSQL) while a batch of runs is in flight.

Each ``scenario_*(world, seed)`` is one iteration: it starts a batch of
``chaos_celery_mixed`` runs (steps, a sleep, a retried step, two gathered steps), injects
faults at seeded random points (after a random share of the batch's step bodies has
begun, so they land while runs are in flight), waits until every run is terminal and
checks outcomes, invariants and side-effect counters (:func:`celery_checks.verify`).
Sizes grow with ``PYWORKFLOW_CHAOS_SCALE`` (:func:`tests.chaos.harness.scaled`): 1 is
the short mode of CI, the soak runs larger. ``CELERY_SCENARIOS`` lists them for the
soak, with the storage each one needs.

Example::

    outcome = await scenario_sigkill(world, seed=7)
    assert not outcome.lost and not outcome.violations, outcome.result().summary()
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pyworkflow import create_schedule
from pyworkflow.runtime.celery import shared_storage_config
from pyworkflow.storage.schemas import OverlapPolicy, Schedule, ScheduleSpec
from pyworkflow.testing.invariants import Violation
from tests.chaos.celery_checks import Batch, Outcome, launch, verify, when_bodies
from tests.chaos.celery_world import STEP_WORKERS, WF_WORKERS, World
from tests.chaos.harness import scaled

KILLABLE = (*WF_WORKERS, *STEP_WORKERS, "step_child", "beat")


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def _at_random_points(
    world: World, batch: Batch, rng: random.Random, count: int
) -> AsyncIterator[float]:
    """Yield ``count`` times, each once a (growing) random share of the batch's step
    bodies has begun, plus a random fraction of a second."""
    for share in sorted(rng.uniform(0.05, 0.9) for _ in range(count)):
        await when_bodies(world, batch.run_ids, max(1, int(share * batch.bodies)))
        await asyncio.sleep(rng.uniform(0, 0.3))
        yield share


# --------------------------------------------------------------------------- 1. SIGKILL


async def kill_one(world: World, victim: str, rng: random.Random, out: Outcome) -> None:
    """SIGKILL ``victim`` (a process name, or ``step_child``: one pool process of a step
    worker) and start it again after a moment."""
    if victim == "step_child":
        if world.kill_pool_child(rng.choice(STEP_WORKERS)):
            out.faults["sigkill_step_child"] += 1
            return
        victim = rng.choice(STEP_WORKERS)  # between a child's death and its replacement
    world.kill(victim)
    out.faults[f"sigkill_{victim}"] += 1
    await asyncio.sleep(rng.uniform(0, 1.0))
    await world.blocking(world.restart, victim)


async def scenario_sigkill(world: World, seed: int) -> Outcome:
    """SIGKILL the workflow worker, a step worker, a step pool process or Beat at random
    points while runs are in flight; restart it; every run completes, each step once."""
    rng, out = random.Random(seed), Outcome("celery_sigkill", seed)
    batch = Batch(_tag(), seconds=rng.choice([0.02, 0.1, 0.3]))
    await launch(world, batch, scaled(8))
    async for _ in _at_random_points(world, batch, rng, scaled(3)):
        await kill_one(world, rng.choice(KILLABLE), rng, out)
    await verify(world, out, batch.run_ids, batch.expected())
    return out


# --------------------------------------------------------------------------- 2. Redis


async def restart_redis(world: World, rng: random.Random, out: Outcome) -> None:
    """Stop Redis and start it again on its port after up to 3 s: keeping its data (an
    RDB snapshot taken just before), losing it, or crashing (SIGKILL)."""
    how = rng.choice(["kept", "lost", "crash"])
    server = world.redis
    if how == "kept":
        with server.client() as client:
            client.save()
    await world.blocking(server.kill if how == "crash" else server.stop)
    await asyncio.sleep(rng.uniform(0.2, 3.0))
    await world.blocking(server.restart)
    # The snapshot was loaded; later restarts must start empty again.
    (server.workdir / "dump.rdb").unlink(missing_ok=True)
    out.faults[f"redis_restart_{how}"] += 1


async def scenario_redis_restart(world: World, seed: int) -> Outcome:
    """Restart Redis mid-batch (its queued messages lost or kept) while the application
    keeps starting runs; every run completes, each step once."""
    rng, out = random.Random(seed), Outcome("celery_redis_restart", seed)
    batch = Batch(_tag(), seconds=rng.choice([0.02, 0.1]))
    await launch(world, batch, scaled(8))
    async for _ in _at_random_points(world, batch, rng, scaled(1)):
        # start() during the outage records its run and retries sending it.
        late = asyncio.create_task(launch(world, batch, scaled(2)))
        await restart_redis(world, rng, out)
        await asyncio.wait_for(late, timeout=60)
    await verify(world, out, batch.run_ids, batch.expected())
    return out


# --------------------------------------------------------------------------- 3. PostgreSQL


async def restart_postgres(world: World, rng: random.Random, out: Outcome) -> None:
    """Restart PostgreSQL (a fast shutdown, or a crash: SIGKILL) after up to 4 s down."""
    assert world.pg is not None, "the PostgreSQL scenario needs a PostgreSQL world"
    crash = rng.random() < 0.5
    await world.blocking(world.pg.kill if crash else world.pg.stop)
    await asyncio.sleep(rng.uniform(0.2, 4.0))
    await world.blocking(world.pg.restart)
    out.faults["postgres_" + ("crash" if crash else "restart")] += 1


async def scenario_postgres_restart(world: World, seed: int) -> Outcome:
    """Restart (or crash) PostgreSQL, the storage of every worker, mid-batch."""
    rng, out = random.Random(seed), Outcome("celery_postgres_restart", seed)
    batch = Batch(_tag(), seconds=rng.choice([0.02, 0.1]))
    await launch(world, batch, scaled(8))
    async for _ in _at_random_points(world, batch, rng, scaled(1)):
        await restart_postgres(world, rng, out)
    await verify(world, out, batch.run_ids, batch.expected())
    return out


# --------------------------------------------------------------------------- 4. duplicates


async def _started_steps(world: World, run_id: str) -> tuple[list[dict[str, Any]], set[str]]:
    """The run's ``step.started`` payloads and the step ids that completed."""
    events = await world.storage.get_events(run_id, ["step.started", "step.completed"])
    started = [e.data for e in events if e.type.value == "step.started"]
    done = {str(e.data["step_id"]) for e in events if e.type.value == "step.completed"}
    return started, done


async def duplicate_one(
    world: World, batch: Batch, rng: random.Random, out: Outcome, raced: Counter[str]
) -> None:
    """Publish again a message the engine already sent for a random run of the batch:
    a step command (after or before its outcome was recorded), a resume or a start."""
    run_id = rng.choice(batch.run_ids)
    config = shared_storage_config(world.storage)
    started, done = await _started_steps(world, run_id)
    kind = rng.choice(["step", "step", "resume", "start"])
    if kind == "step" and started:
        data = rng.choice(started)
        fields = ("step_id", "step_name", "attempt", "dispatch")
        message = {k: data[k] for k in fields} | {"args_json": data["args"]}
        message |= {"kwargs_json": data["kwargs"], "run_id": run_id}
        if str(data["step_id"]) in done:
            kind = "step_after_outcome"  # must not run the body again
        else:
            kind = "step_in_flight"  # may race the original: the body may run twice
            raced[f"{run_id}:{data['step_id']}"] += 1
        task, kwargs = "pyworkflow.execute_step", message | {"storage_config": config}
    elif kind == "start":
        run = await world.storage.get_run(run_id)
        assert run is not None
        task = "pyworkflow.start_workflow"
        kwargs = {"workflow_name": run.workflow_name, "args_json": run.input_args}
        kwargs |= {"kwargs_json": run.input_kwargs, "run_id": run_id, "storage_config": config}
    else:
        kind, task, kwargs = "resume", "pyworkflow.resume_workflow", {"run_id": run_id}
        kwargs["storage_config"] = config
    # A resume goes out twice at once: both workflow workers may take one each.
    copies = 2 if kind == "resume" else 1
    for _ in range(copies):
        send = functools.partial(world.app.send_task, task, kwargs=kwargs, ignore_result=True)
        await world.blocking(send)
    out.faults[f"duplicate_{kind}"] += copies


async def kill_before_ack(world: World, out: Outcome, timeout: float = 2.0) -> None:
    """SIGKILL a step pool process right after a step body returned, before its task
    is acknowledged: the message is given back and delivered again (acks_late)."""
    mains = {world.cluster.procs[name].pid for name in STEP_WORKERS}
    pool = {pid for name in STEP_WORKERS for pid in world.pids(name)} - mains
    log = world.effects.refresh()
    seen, deadline = len(log.order), time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = log.refresh().order[seen:]
        seen += len(fresh)
        for marker, nonce in fresh:
            pid = log.executions[nonce].pid
            if marker == "leave" and pid in pool:
                world.killed.add(pid)
                os.kill(pid, signal.SIGKILL)
                out.faults["sigkill_step_child_before_ack"] += 1
                return
        await asyncio.sleep(0.003)


async def scenario_duplicates(world: World, seed: int) -> Outcome:
    """Deliver messages twice: step commands (once recorded: the body must not run
    again; in flight: recorded once), resumes, starts, and step messages given back
    by a pool process killed before acknowledging them."""
    rng, out = random.Random(seed), Outcome("celery_duplicates", seed)
    batch = Batch(_tag(), seconds=rng.choice([0.02, 0.1]))
    raced: Counter[str] = Counter()
    await launch(world, batch, scaled(8))
    async for share in _at_random_points(world, batch, rng, scaled(10)):
        # Kills only while many bodies are still to come: one must return to be killed.
        if share < 0.6 and rng.random() < 0.25:
            await kill_before_ack(world, out)
        else:
            await duplicate_one(world, batch, rng, out, raced)
    await verify(world, out, batch.run_ids, batch.expected(), raced)
    out.notes["raced_duplicates"] += sum(raced.values())
    return out


# --------------------------------------------------------------------------- 5. two Beats


async def _every_second(world: World, tag: str, slots: int) -> tuple[str, list[datetime]]:
    """An ALLOW_ALL schedule of ``chaos_celery_slot`` with ``slots`` slots, 1 s apart."""
    first = datetime.now(UTC) + timedelta(seconds=1)
    spec = ScheduleSpec(
        interval="1s", start_at=first, end_at=first + timedelta(seconds=slots - 0.5)
    )
    schedule = await create_schedule(
        "chaos_celery_slot",
        spec,
        tag,
        overlap_policy=OverlapPolicy.ALLOW_ALL,
        storage=world.storage,
    )
    return schedule.schedule_id, [first + timedelta(seconds=k) for k in range(slots)]


async def _settled(world: World, schedule_id: str, timeout: float) -> Schedule | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = await world.storage.get_schedule(schedule_id)
        if s and s.next_run_time is None and not s.buffered_count and not s.running_run_ids:
            return s
        await asyncio.sleep(0.2)
    return None


async def check_slots(
    world: World, schedule_id: str, slots: list[datetime], out: Outcome
) -> list[str]:
    """Each slot fired (or was skipped) exactly once; returns the runs it started."""
    events = await world.storage.get_events(schedule_id)
    handled = [e for e in events if e.type.value in ("schedule.triggered", "schedule.skipped")]
    times = Counter(str(e.data["scheduled_time"]) for e in handled)
    for at, n in times.items():
        if n > 1:
            out.violations.append(Violation("slot_fired_twice", schedule_id, f"{at}: {n}"))
    if len(times) != len(slots):
        detail = f"{len(times)} of {len(slots)} slots handled: {sorted(times)}"
        out.violations.append(Violation("slot_not_handled", schedule_id, detail))
    out.notes["slots_skipped"] += sum(e.type.value == "schedule.skipped" for e in handled)
    return [e.data["workflow_run_id"] for e in handled if e.type.value == "schedule.triggered"]


async def scenario_two_beats(world: World, seed: int) -> Outcome:
    """Two Beats at once (one of them SIGKILLed and restarted at random points) while
    runs sleep and retry and a schedule fires every second: each timer and each slot
    fires once."""
    rng, out = random.Random(seed), Outcome("celery_two_beats", seed)
    await world.blocking(world.add_beat, "beat2")
    out.faults["second_beat"] += 1
    try:
        tag, slots = _tag(), scaled(4)
        schedule_id, times = await _every_second(world, tag, slots)
        batch = Batch(tag, seconds=0.02, pause=rng.choice([0.5, 1.0, 2.0]))
        await launch(world, batch, scaled(8))
        async for _ in _at_random_points(world, batch, rng, scaled(2)):
            await kill_one(world, rng.choice(["beat", "beat2"]), rng, out)
        schedule = await _settled(world, schedule_id, timeout=30 + slots)
        if schedule is None:
            out.violations.append(Violation("schedule_unsettled", schedule_id, "after 30 s"))
        slot_runs = await check_slots(world, schedule_id, times, out)
    finally:
        world.cluster.kill("beat2")
    expected = batch.expected() | dict.fromkeys(slot_runs, "0")
    await verify(world, out, batch.run_ids + slot_runs, expected)
    return out


# --------------------------------------------------------------------------- 6. all of it


async def scenario_mixed(world: World, seed: int) -> Outcome:
    """Every kind of fault above, drawn at random for each point of one batch: kills,
    duplicate deliveries, Redis restarts and (on PostgreSQL) database restarts."""
    rng, out = random.Random(seed), Outcome("celery_mixed", seed)
    batch = Batch(_tag(), seconds=rng.choice([0.02, 0.1, 0.3]))
    raced: Counter[str] = Counter()
    await launch(world, batch, scaled(8))
    kinds = ["kill"] * 4 + ["duplicate"] * 4 + ["before_ack", "redis"]
    kinds += ["postgres"] if world.pg is not None else []
    async for _ in _at_random_points(world, batch, rng, scaled(5)):
        kind = rng.choice(kinds)
        if kind == "kill":
            await kill_one(world, rng.choice(KILLABLE), rng, out)
        elif kind == "duplicate":
            await duplicate_one(world, batch, rng, out, raced)
        elif kind == "before_ack":
            await kill_before_ack(world, out)
        elif kind == "redis":
            await restart_redis(world, rng, out)
        else:
            await restart_postgres(world, rng, out)
    await verify(world, out, batch.run_ids, batch.expected(), raced)
    return out


Scenario = Callable[[World, int], Awaitable[Outcome]]

#: Every Celery scenario by name, with the storage of the world it runs in.
CELERY_SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "celery_sigkill": (scenario_sigkill, "sqlite"),
    "celery_sigkill_postgres": (scenario_sigkill, "postgres"),
    "celery_redis_restart": (scenario_redis_restart, "sqlite"),
    "celery_postgres_restart": (scenario_postgres_restart, "postgres"),
    "celery_duplicates": (scenario_duplicates, "sqlite"),
    "celery_two_beats": (scenario_two_beats, "sqlite"),
    "celery_mixed": (scenario_mixed, "postgres"),
}
