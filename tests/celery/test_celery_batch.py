"""Issue 4's "Done means" on real processes: batches of 100 workflows x 5 steps on one
workflow worker and two step workers, clean, with a step worker or the workflow
worker SIGKILLed halfway, and across a 10 s Redis outage.

The cluster runs with short recovery timings (``FAST_RECOVERY``, in every process and
in this one) so that each fault is recovered from in seconds. Step bodies log each
run to a file (tests/celery/batch.py): "ran once" is counted, not assumed. Durations
and recovery times are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from pyworkflow import start
from pyworkflow.engine import dispatch
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import RunStatus
from tests.celery import flows
from tests.celery.batch import (
    STEPS,
    body_runs,
    check,
    launch,
    repeated_bodies,
    wait_all,
    wait_for_bodies,
)
from tests.celery.conftest import STEP_WORKER, WORKFLOW_WORKER, Cluster, new_cluster
from tests.servers import RedisServer
from tests.support import descendants

assert celery_runtime.CeleryRuntime  # imported for its registration

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

RUNS = 100
#: A dead activation's run is taken over after 3 s; a lost resume (or start) message
#: is replaced after 5 s; a step attempt with no outcome is sent again after 10 s.
FAST_RECOVERY = {
    "PYWORKFLOW_LEASE_SECONDS": "3",
    "PYWORKFLOW_RESUME_GUARD_SECONDS": "5",
    "PYWORKFLOW_STEP_REDISPATCH_SECONDS": "10",
}


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One workflow worker, two step workers of one process each, Beat."""
    group = new_cluster(redis_server, tmp_path_factory.mktemp("batch"), **FAST_RECOVERY)
    try:
        group.worker("wf", WORKFLOW_WORKER, "--pool=solo")
        for name in ("steps1", "steps2"):
            group.worker(name, STEP_WORKER, "--pool=prefork", "--concurrency=1")
        group.beat("beat")
        yield group
    finally:
        group.close()


@pytest.fixture
def celery_env(celery_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """This process starts runs with the cluster's resume guard too (start() records it)."""
    seconds = float(FAST_RECOVERY["PYWORKFLOW_RESUME_GUARD_SECONDS"])
    monkeypatch.setattr(dispatch, "RESUME_GUARD_SECONDS", seconds)
    return celery_env


def _step_pids(cluster: Cluster, name: str) -> set[int]:
    return set(descendants(cluster.procs[name].pid))


async def test_batch_runs_each_step_once_on_two_step_workers(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    batch = await launch(store, RUNS)
    submitted = time.monotonic() - batch.began
    runs = await wait_all(store, batch.run_ids, timeout=90)
    elapsed = time.monotonic() - batch.began
    await check(store, batch, runs)
    assert not repeated_bodies(cluster.workdir, batch), "a step body ran twice"
    pids = {pid for pids in body_runs(cluster.workdir, batch.prefix).values() for pid in pids}
    workers = [_step_pids(cluster, name) for name in ("steps1", "steps2")]
    assert pids <= workers[0] | workers[1], "a step ran outside the step workers"
    assert all(pids & w for w in workers), "one step worker got no step"
    print(
        f"\n{RUNS} runs x {STEPS} steps: submitted in {submitted:.2f}s, all completed in "
        f"{elapsed:.2f}s ({RUNS * STEPS / elapsed:.0f} steps/s)"
    )


async def test_batch_survives_a_step_worker_sigkill(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    batch = await launch(store, RUNS)
    await wait_for_bodies(cluster.workdir, batch.prefix, RUNS * STEPS // 2)
    victims = _step_pids(cluster, "steps1") | {cluster.procs["steps1"].pid}
    cluster.kill("steps1")
    killed_at = time.monotonic()
    try:
        runs = await wait_all(store, batch.run_ids, timeout=90)
        recovered = time.monotonic() - killed_at
        await check(store, batch, runs)
        repeated = repeated_bodies(cluster.workdir, batch)
        # Only the step the killed process was running may have run twice.
        assert len(repeated) <= 1, repeated
        assert all(pids[0] in victims for pids in repeated.values()), (repeated, victims)
        print(
            f"\nstep worker SIGKILLed halfway: the batch completed {recovered:.2f}s later "
            f"({time.monotonic() - batch.began:.2f}s in all); bodies run twice: {repeated}"
        )
    finally:
        cluster.restart("steps1")


async def _leases_held_by(store: StorageBackend, run_ids: list[str], pid: int) -> dict[str, str]:
    """Runs whose activation lease a (dead) process ``pid`` holds while RUNNING."""
    held = {}
    for run_id in run_ids:
        lease = await store.get_run_lease(run_id)
        run = await store.get_run(run_id)
        if lease is None or run is None or lease.owner.split(":")[-2] != str(pid):
            continue
        if run.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
            held[run_id] = lease.owner
    return held


async def test_batch_survives_a_workflow_worker_sigkill(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    batch = await launch(store, RUNS)
    await wait_for_bodies(cluster.workdir, batch.prefix, RUNS * STEPS // 2)
    # Halfway, one more run's activation blocks the (solo) workflow worker: it is
    # certainly mid-activation when killed.
    hang_tag = f"{batch.prefix}-hang"
    hang_id = await start(flows.hang_once, hang_tag, runtime="celery", storage=store)
    marker = cluster.workdir / f"{hang_tag}.hanging"
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline, "the hanging activation never began"
        await asyncio.sleep(0.02)
    wf_pid = cluster.procs["wf"].pid
    assert int(marker.read_text()) == wf_pid
    cluster.kill("wf")
    killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
    everything = [*batch.run_ids, hang_id]
    held = await _leases_held_by(store, everything, wf_pid)
    assert hang_id in held, held
    cluster.restart("wf")
    runs = await wait_all(store, everything, timeout=90)
    recovered = time.monotonic() - killed_at
    await check(store, batch, runs)
    hung = runs[hang_id]
    assert hung.status is RunStatus.COMPLETED and hung.result == "1"
    assert hung.completed_at is not None
    # workflow.interrupted exactly where a dead activation's lease was taken over.
    interrupted = {r: await store.get_events(r, ["workflow.interrupted"]) for r in everything}
    assert {r for r, found in interrupted.items() if found} == set(held)
    for run_id, owner in held.items():
        (event,) = interrupted[run_id]
        assert event.data["worker_id"] == owner and event.data["recovery_attempt"] == 1
        assert (await store.get_run(run_id)).recovery_attempts == 1  # type: ignore[union-attr]
    assert not repeated_bodies(cluster.workdir, batch), "a step body ran twice"
    print(
        f"\nworkflow worker SIGKILLed mid-activation: the hung run completed "
        f"{(hung.completed_at - killed_wall).total_seconds():.2f}s later, the batch "
        f"{recovered:.2f}s later; interrupted runs: {len(held)}"
    )


async def test_batch_survives_a_10s_redis_outage(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend, redis_server: RedisServer
) -> None:
    batch = await launch(store, RUNS // 2)
    await wait_for_bodies(cluster.workdir, batch.prefix, RUNS // 2 * STEPS // 2)
    redis_server.stop()
    stopped_at = time.monotonic()
    # The application keeps starting runs: start() records each run and retries its
    # message until the broker is back.
    late = asyncio.create_task(launch(store, RUNS // 2, batch))
    await asyncio.sleep(0)
    await asyncio.sleep(10 - (time.monotonic() - stopped_at))
    redis_server.restart()
    back_at = time.monotonic()
    try:
        await asyncio.wait_for(late, timeout=30)
        sent = time.monotonic() - back_at
        runs = await wait_all(store, batch.run_ids, timeout=90)
        recovered = time.monotonic() - back_at
        await check(store, batch, runs)  # start() never raises: a failed send is logged
        # This process publishes again, and the workers pick it up at once.
        began = time.monotonic()
        after = await launch(store, 1)
        (run,) = (await wait_all(store, after.run_ids, timeout=20)).values()
        assert run.status is RunStatus.COMPLETED and run.result == after.expected(0)
        print(
            f"\nRedis down {back_at - stopped_at:.1f}s: the {RUNS // 2} starts made during the "
            f"outage returned {sent:.2f}s after it ended ({len(batch.failed_starts)} raised: "
            f"{sorted(set(batch.failed_starts))[:1]}); every run completed {recovered:.2f}s "
            f"after it ended; a new run then took {time.monotonic() - began:.2f}s"
        )
    finally:
        if not late.done():
            late.cancel()
