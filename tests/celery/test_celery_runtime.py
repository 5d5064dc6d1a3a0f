"""The Celery runtime end to end: real Redis, real ``celery worker`` and ``celery beat``
processes, a SQLite file shared by all of them (PostgreSQL in one test).

Step bodies record each run in a file (tests/celery/flows.py), so "ran once" and "ran
in parallel" are measured, not assumed. Numbers worth knowing are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from pyworkflow import start
from pyworkflow.celery.app import create_celery_app
from pyworkflow.engine.dispatch import StepCommand
from pyworkflow.engine.ids import new_run_id
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.runtime.driver import create_run, drive, new_run_record
from pyworkflow.runtime.lease import new_owner
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, RunStatus, WorkflowRun
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.celery import flows
from tests.celery.conftest import STEP_WORKER, Cluster
from tests.support import descendants, eventually, wait_until

assert celery_runtime.CeleryRuntime  # imported for its registration

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _tag() -> str:
    return uuid.uuid4().hex[:10]


async def _launch(store: StorageBackend, wf: Any, *args: Any) -> str:
    return await start(wf, *args, runtime="celery", durable=True, storage=store)


async def _finished(store: StorageBackend, run_id: str, timeout: float = 30) -> WorkflowRun:
    async def done() -> WorkflowRun | None:
        run = await store.get_run(run_id)
        return run if run is not None and run.status in TERMINAL_STATUSES else None

    run: WorkflowRun = await eventually(done, timeout=timeout, interval=0.01)
    return run


async def _count(store: StorageBackend, run_id: str, kind: str) -> int:
    return len(await store.get_events(run_id, [kind]))


async def test_five_steps_complete_and_each_body_runs_once(
    celery_env: dict[str, str], store: StorageBackend
) -> None:
    latencies = []
    for _ in range(3):  # the first run also pays for connections; report each
        tag = _tag()
        began = time.monotonic()
        run_id = await _launch(store, flows.five_steps, tag)
        sent = time.monotonic() - began
        run = await _finished(store, run_id)
        latencies.append(time.monotonic() - began)
        assert sent < 1.0, f"start() took {sent:.2f}s: it must only send a message"
        assert run.status is RunStatus.COMPLETED and run.result == "5"
        assert len(flows.runs_of("add_one", tag)) == 5
        assert await _count(store, run_id, "step.completed") == 5
    print(f"\n5-step run, start() to COMPLETED: {', '.join(f'{x:.3f}s' for x in latencies)}")


async def test_steps_run_on_the_steps_queue_only(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    tag = _tag()
    run = await _finished(store, await _launch(store, flows.where, tag))
    assert run.status is RunStatus.COMPLETED
    step_pids = {pid for pid, _, _ in flows.runs_of("add_one", tag)}
    activation_pids = {pid for pid, _, _ in flows.runs_of("activation", tag)}
    assert step_pids <= set(descendants(cluster.procs["steps"].pid)), "a step ran elsewhere"
    assert activation_pids == {cluster.procs["wf"].pid}, "an activation ran elsewhere"


async def test_gathered_steps_run_in_parallel_on_two_processes(
    celery_env: dict[str, str], store: StorageBackend
) -> None:
    tag = _tag()
    run = await _finished(store, await _launch(store, flows.fan_out, tag, 1.0))
    assert run.status is RunStatus.COMPLETED and run.result == "[0, 1, 4, 9]"
    windows = sorted(flows.runs_of("slow", tag), key=lambda w: w[1])
    assert len(windows) == 4 and len({pid for pid, _, _ in windows}) == 2
    overlapping = [
        (a, b)
        for i, a in enumerate(windows)
        for b in windows[i + 1 :]
        if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]
    ]
    assert len(overlapping) >= 2, f"no two steps overlapped: {windows}"
    span = windows[-1][2] - windows[0][1]
    print(f"\n4 x 1s steps on 2 processes: {span:.2f}s from first start to last end")


async def _sleep_lateness(store: StorageBackend, run_id: str) -> float:
    (started,) = await store.get_events(run_id, ["sleep.started"])
    (completed,) = await store.get_events(run_id, ["sleep.completed"])
    due = datetime.fromisoformat(started.data["resume_at"])
    return (completed.timestamp - due).total_seconds()


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value at least ``fraction`` of them reach."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def _sleepers(store: StorageBackend, count: int) -> list[float]:
    """Start ``count`` runs that ``sleep("3s")`` at once; each one's lateness (s)."""
    run_ids = [await _launch(store, flows.sleeper, _tag(), "3s") for _ in range(count)]
    lateness = []
    for run_id in run_ids:
        run = await _finished(store, run_id)
        assert run.status is RunStatus.COMPLETED and run.result == "42"
        # Each timer fired once: one sleep.completed per sleep, one completion.
        assert await _count(store, run_id, "sleep.completed") == 1
        assert await _count(store, run_id, "workflow.completed") == 1
        lateness.append(await _sleep_lateness(store, run_id))
    return lateness


async def test_sleep_resumes_on_time_at_the_95th_percentile(
    celery_env: dict[str, str], store: StorageBackend
) -> None:
    lateness = await _sleepers(store, 20)
    p50, p95 = _percentile(lateness, 0.5), _percentile(lateness, 0.95)
    print(f"\n20 x sleep('3s') woke late by p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    assert min(lateness) >= 0, "a sleep ended early"
    assert p95 <= 1.5, sorted(lateness)


async def test_retry_waits_on_the_durable_timer(
    celery_env: dict[str, str], store: StorageBackend
) -> None:
    tag = _tag()
    run_id = await _launch(store, flows.flaky_flow, tag)
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED and run.result == '"recovered"'
    (first, second) = flows.runs_of("flaky", tag)
    gap = second[1] - first[1]
    print(f"\nretry_delay=1: second attempt started {gap:.3f}s after the first")
    assert 1.0 <= gap <= 1.0 + 1.5
    assert await _count(store, run_id, "step.retrying") == 1


async def _dispatch_in_test_process(store: StorageBackend, tag: str) -> tuple[str, StepCommand]:
    """Create a run here and drive it in dispatch mode, keeping its step command."""
    run = new_run_record(new_run_id(), "celery_where", serialize_args(tag), serialize_kwargs())
    owner = new_owner()
    state = await create_run(store, run, owner)
    sent: list[StepCommand] = []

    async def keep(commands: list[StepCommand]) -> None:
        sent.extend(commands)

    await drive(store, run, state, owner, dispatch=True, runtime_name="celery", send=keep)
    (command,) = sent
    return run.run_id, command


async def _deliver_twice(
    cluster: Cluster, store: StorageBackend, app: Any, concurrent: bool
) -> tuple[str, str]:
    """Send one step command twice (at once, or after the first was recorded)."""
    tag = _tag()
    run_id, command = await _dispatch_in_test_process(store, tag)
    ids = [f"dup-{tag}-{n}" for n in (1, 2)]
    for n, task_id in enumerate(ids):
        if n == 1 and not concurrent:
            await eventually(lambda: _count(store, run_id, "step.completed"), timeout=20)
        app.send_task(
            "pyworkflow.execute_step",
            kwargs=command.to_message(),
            task_id=task_id,
            ignore_result=True,
        )
    wait_until(lambda: all(f"{i}] succeeded" in cluster.log("steps") for i in ids), timeout=20)
    return tag, run_id


async def test_duplicate_step_delivery_is_recorded_once(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    app = create_celery_app(cluster.broker, cluster.env["PYWORKFLOW_CELERY_RESULT_BACKEND"])
    for concurrent in (False, True):
        tag, run_id = await _deliver_twice(cluster, store, app, concurrent)
        run = await _finished(store, run_id)
        assert run.status is RunStatus.COMPLETED and run.result == "1"
        assert await _count(store, run_id, "step.completed") == 1
        if not concurrent:  # the second delivery found the outcome and ran nothing
            assert len(flows.runs_of("add_one", tag)) == 1


async def test_sigkill_of_a_step_process_mid_step_redelivers_it(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    tag = _tag()
    run_id = await _launch(store, flows.killable_flow, tag)
    marker = cluster.workdir / f"{tag}.started"
    pid = int(wait_until(lambda: marker.exists() and marker.read_text(), timeout=20))
    assert pid in descendants(cluster.procs["steps"].pid)
    os.kill(pid, signal.SIGKILL)  # the pool process; its worker re-queues the message
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED and run.result == '"survived"'
    assert len(flows.runs_of("killable", tag)) == 2
    assert await _count(store, run_id, "step.completed") == 1


async def test_sigkill_of_the_whole_step_worker_is_covered_by_the_watchdog(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    tag = _tag()
    run_id = await _launch(store, flows.killable_flow, tag)
    marker = cluster.workdir / f"{tag}.started"
    wait_until(marker.exists, timeout=20)
    killed_at = time.monotonic()
    cluster.kill("steps")  # its unacknowledged message stays invisible for 12 h
    cluster.restart("steps")
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED and run.result == '"survived"'
    print(f"\nwhole step worker killed: run completed {time.monotonic() - killed_at:.2f}s later")
    assert len(flows.runs_of("killable", tag)) == 2
    assert await _count(store, run_id, "step.completed") == 1
    assert cluster.argv["steps"][: len(STEP_WORKER)] == STEP_WORKER


async def test_two_beat_processes_fire_each_timer_once(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    cluster.beat("beat2")
    try:
        lateness = await _sleepers(store, 20)  # checks one sleep.completed per sleep
        p95 = _percentile(lateness, 0.95)
        print(f"\ntwo Beats, 20 x sleep('3s'): p95 lateness {p95 * 1000:.0f} ms")
        assert min(lateness) >= 0 and p95 <= 1.5, sorted(lateness)
        for beat in ("beat", "beat2"):
            assert "Sending due task pyworkflow.tick" in cluster.log(beat)
    finally:
        cluster.kill("beat2")


async def test_batch_of_runs_completes_without_duplicates(
    celery_env: dict[str, str], store: StorageBackend
) -> None:
    tags = [_tag() for _ in range(20)]
    began = time.monotonic()
    run_ids = await asyncio.gather(*(_launch(store, flows.five_steps, tag) for tag in tags))
    runs = [await _finished(store, run_id, timeout=60) for run_id in run_ids]
    elapsed = time.monotonic() - began
    assert all(r.status is RunStatus.COMPLETED and r.result == "5" for r in runs)
    for tag, run_id in zip(tags, run_ids, strict=True):
        assert len(flows.runs_of("add_one", tag)) == 5
        assert await _count(store, run_id, "step.completed") == 5
    print(f"\n20 runs x 5 steps: {elapsed:.2f}s, {100 / elapsed:.1f} steps/s")


async def test_start_from_the_test_process_returns_before_the_run_exists(
    celery_env: dict[str, str], cluster: Cluster
) -> None:
    storage = SQLiteStorageBackend(cluster.env["PYWORKFLOW_STORAGE_PATH"])
    began = time.monotonic()
    run_id = await start(flows.five_steps, _tag(), runtime="celery", durable=True, storage=storage)
    assert run_id.startswith("run_") and time.monotonic() - began < 1.0
    run = await _finished(storage, run_id)
    assert run.status is RunStatus.COMPLETED
    await storage.disconnect()


async def test_code_changed_under_a_sleeping_run(
    cluster: Cluster, celery_env: dict[str, str], store: StorageBackend
) -> None:
    """DISTRIBUTED.md, "Upgrading running workflows": a change after the run's position
    is picked up; a change before it fails the run with NondeterminismError, for good."""
    tags = {change: _tag() for change in ("after", "before")}
    run_ids = {c: await _launch(store, flows.upgrade, tag, c) for c, tag in tags.items()}
    for run_id in run_ids.values():
        await eventually(lambda r=run_id: _count(store, r, "sleep.started"), timeout=20)
    for tag in tags.values():  # "deploy" while both runs sleep
        (cluster.workdir / f"{tag}.v2").write_text("deployed")
    after, before = [await _finished(store, run_ids[c]) for c in ("after", "before")]
    assert after.status is RunStatus.COMPLETED and after.result == '["a", "b"]'
    assert before.status is RunStatus.FAILED
    assert before.error is not None and before.error.startswith(
        "Non-deterministic workflow: at position 1 the event log recorded step 'celery_upgrade_a'"
    ), before.error
    (failed,) = await store.get_events(run_ids["before"], ["workflow.failed"])
    assert failed.data["error_type"] == "NondeterminismError"
    # Deploying the old code back does not revive it: FAILED is final.
    (cluster.workdir / f"{tags['before']}.v2").unlink()
    await celery_runtime.CeleryRuntime().resume_workflow(run_ids["before"], store)
    await asyncio.sleep(1.0)
    again = await store.get_run(run_ids["before"])
    assert again is not None and again.status is RunStatus.FAILED
    assert await _count(store, run_ids["before"], "workflow.failed") == 1
