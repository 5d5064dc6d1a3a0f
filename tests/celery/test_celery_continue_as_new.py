"""Continue-as-new on the Celery runtime: real Redis, a workflow worker, a step worker,
Beat.

A run that calls ``continue_as_new`` ends CONTINUED_AS_NEW; its follow-ups create the
next run (PENDING, with a resume guard) and the task sends a resume for it, so the
chain goes on on the workers (upstream never started the next run on Celery). The
flows are in tests/celery/child_flows.py; step bodies log each run to a file. The
cluster runs with short recovery timings (``FAST_RECOVERY``) so the crash tests
recover in seconds, the ``followup`` timer included
(``PYWORKFLOW_FOLLOWUP_DELAY_SECONDS``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pyworkflow import get_workflow_chain, get_workflow_result, start
from pyworkflow.engine import dispatch
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.serialization.encoder import serialize_args
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import RunStatus, WorkflowRun
from tests.celery import child_flows
from tests.celery.child_flows import no_timers, runs_tagged
from tests.celery.conftest import Cluster, new_cluster, start_default
from tests.celery.flows import runs_of
from tests.servers import RedisServer
from tests.support import descendants, eventually

assert celery_runtime.CeleryRuntime  # imported for its registration

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

FAST_RECOVERY = {
    "PYWORKFLOW_LEASE_SECONDS": "3",
    "PYWORKFLOW_RESUME_GUARD_SECONDS": "3",
    "PYWORKFLOW_STEP_REDISPATCH_SECONDS": "10",
    "PYWORKFLOW_FOLLOWUP_DELAY_SECONDS": "3",
    "PYWORKFLOW_TEST_CRASH_AFTER_END": "1",
}


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The default topology, with short recovery timings in every process."""
    group = new_cluster(redis_server, tmp_path_factory.mktemp("chains"), **FAST_RECOVERY)
    try:
        yield start_default(group)
    finally:
        group.close()


@pytest.fixture
def client(
    celery_env: dict[str, Any], store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> StorageBackend:
    """This process starts runs with the cluster's resume guard (start() records it)."""
    monkeypatch.setattr(dispatch, "RESUME_GUARD_SECONDS", 3.0)
    return store


def _tag() -> str:
    return uuid.uuid4().hex[:10]


async def _launch(store: StorageBackend, wf: Any, *args: Any) -> str:
    return await start(wf, *args, runtime="celery", durable=True, storage=store)


async def _types(store: StorageBackend, run_id: str) -> list[str]:
    return [e.type.value for e in await store.get_events(run_id)]


async def _check_chain(
    store: StorageBackend, first: str, name: str, tag: str, length: int
) -> list[WorkflowRun]:
    """``length`` runs linked both ways, all CONTINUED_AS_NEW but the COMPLETED last,
    the same list read from any member, and no run of the chain created twice."""
    chain = await get_workflow_chain(first, storage=store)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW] * (length - 1) + [
        RunStatus.COMPLETED
    ], [(r.run_id, r.status) for r in chain]
    assert chain[0].run_id == first and chain[0].continued_from_run_id is None
    for before, after in itertools.pairwise(chain):
        assert before.continued_to_run_id == after.run_id
        assert after.continued_from_run_id == before.run_id
        (event,) = await store.get_events(before.run_id, ["workflow.continued_as_new"])
        assert event.data["new_run_id"] == after.run_id
        assert event.data["args"] == after.input_args
    ids = [r.run_id for r in chain]
    for member in (ids[len(ids) // 2], ids[-1]):
        assert [r.run_id for r in await get_workflow_chain(member, storage=store)] == ids
    assert sorted(r.run_id for r in await runs_tagged(store, name, tag)) == sorted(ids)
    for run in chain:  # nothing left to fire on an ended run
        await eventually(lambda r=run.run_id: no_timers(store, r), timeout=10)
    return chain


async def test_chain_of_30_runs_completes_on_the_workers(client: StorageBackend) -> None:
    store, tag = client, _tag()
    began = time.monotonic()
    first = await _launch(store, child_flows.count_down, tag, 29, 0)
    result = await get_workflow_result(first, storage=store, wait=True, timeout=60)
    elapsed = time.monotonic() - began
    assert result == sum(range(30))
    chain = await _check_chain(store, first, "celery_can_count", tag, 30)
    print(f"\nchain of 30 runs (no step): {elapsed:.2f}s, {elapsed / 30 * 1000:.0f} ms a link")
    assert chain[-1].input_args == serialize_args(tag, 0, sum(range(30)))
    # Each run's history is its own: bounded, however long the chain.
    for run in chain[:-1]:
        assert await _types(store, run.run_id) == ["workflow.started", "workflow.continued_as_new"]
    assert await _types(store, chain[-1].run_id) == ["workflow.started", "workflow.completed"]


async def test_chain_with_a_step_per_run(cluster: Cluster, client: StorageBackend) -> None:
    store, tag = client, _tag()
    began = time.monotonic()
    first = await _launch(store, child_flows.count_down_with_step, tag, 9, 0)
    result = await get_workflow_result(first, storage=store, wait=True, timeout=60)
    print(f"\nchain of 10 runs, one step each: {time.monotonic() - began:.2f}s")
    assert result == sum(range(10))
    chain = await _check_chain(store, first, "celery_can_with_step", tag, 10)
    for run in chain:
        assert len(await store.get_events(run.run_id, ["step.completed"])) == 1
    bodies = [runs_of("chain_step", f"{tag}:{n}") for n in range(10)]
    assert all(len(b) == 1 for b in bodies), bodies
    steps = set(descendants(cluster.procs["steps"].pid))
    assert {pid for ((pid, _, _),) in bodies} <= steps, "a step ran off the step worker"


async def test_chain_survives_a_workflow_worker_killed_in_a_run(
    cluster: Cluster, client: StorageBackend
) -> None:
    """The 11th run of 20 (``left == 9``) blocks the workflow worker in its first
    activation, where the worker is SIGKILLed."""
    store, tag = client, _tag()
    first = await _launch(store, child_flows.count_down_with_step, tag, 19, 0, 9)
    marker = child_flows.hang_marker(tag)
    pid = await eventually(lambda: marker.exists() and marker.read_text(), timeout=30)
    assert int(pid) == cluster.procs["wf"].pid
    cluster.kill("wf")
    killed_at = time.monotonic()
    cluster.restart("wf")
    result = await get_workflow_result(first, storage=store, wait=True, timeout=60)
    took = time.monotonic() - killed_at
    print(f"\nworkflow worker killed in run 11 of 20: the chain completed {took:.2f}s later")
    assert result == sum(range(20))
    chain = await _check_chain(store, first, "celery_can_with_step", tag, 20)
    interrupted = [
        i for i, r in enumerate(chain) if await store.get_events(r.run_id, ["workflow.interrupted"])
    ]
    assert interrupted == [10], interrupted
    assert all(len(runs_of("chain_step", f"{tag}:{n}")) == 1 for n in range(20))


async def test_chain_survives_a_workflow_worker_killed_at_any_moment(
    cluster: Cluster, client: StorageBackend
) -> None:
    """SIGKILL three times, as soon as the chain has 10, 25 and 40 runs: the worker is
    in an activation, between a run's end and its follow-ups (the ``followup`` timer
    covers that), or between them and the next run's resume (its resume guard)."""
    store, tag = client, _tag()
    first = await _launch(store, child_flows.count_down, tag, 59, 0)
    states = []
    for links in (10, 25, 40):

        async def reached(n: int = links) -> bool:
            return len(await get_workflow_chain(first, storage=store)) >= n

        await eventually(reached, timeout=30, interval=0.002)
        cluster.kill("wf")
        chain = await get_workflow_chain(first, storage=store)
        last = chain[-1]
        owed = [t.kind for t in await store.list_timers(last.run_id) if t.kind == "followup"]
        states.append(
            f"{len(chain)} runs, the last {last.status.value}{' ' if owed else ''}"
            f"{'(follow-ups owed)' if owed else ''}"
        )
        cluster.restart("wf")
    killed_at = time.monotonic()
    result = await get_workflow_result(first, storage=store, wait=True, timeout=60)
    took = time.monotonic() - killed_at
    print(f"\nworkflow worker killed at: {'; '.join(states)}. Done {took:.2f}s after the last")
    assert result == sum(range(60))
    await _check_chain(store, first, "celery_can_count", tag, 60)


async def test_chain_survives_a_crash_between_a_run_end_and_its_followups(
    cluster: Cluster, client: StorageBackend
) -> None:
    """The workflow worker dies (``os._exit``) right after the first run's end was
    committed, before the next run was created: its ``followup`` timer does that."""
    store, tag = client, _tag()
    first = await _launch(store, child_flows.count_down_crash, tag, 4, 0)
    marker = child_flows.crash_marker(tag)
    written = await eventually(lambda: marker.exists() and marker.read_text(), timeout=30)
    pid, ended = written.split()
    assert (int(pid), ended) == (cluster.procs["wf"].pid, first)
    await eventually(lambda: not cluster.alive("wf"), timeout=10)
    crashed_at = time.monotonic()
    run = await store.get_run(first)
    assert run is not None and run.status is RunStatus.CONTINUED_AS_NEW
    (continued,) = await store.get_events(first, ["workflow.continued_as_new"])
    assert await store.get_run(continued.data["new_run_id"]) is None, "the next run exists"
    assert [t.kind for t in await store.list_timers(first)] == ["followup"]
    cluster.kill("wf")  # reaps it
    cluster.restart("wf")
    result = await get_workflow_result(first, storage=store, wait=True, timeout=30)
    took = time.monotonic() - crashed_at
    print(
        f"\ncrash before the follow-ups of a chain's first run: chain completed {took:.2f}s later"
    )
    assert result == sum(range(5))
    chain = await _check_chain(store, first, "celery_can_crash", tag, 5)
    assert chain[1].run_id == continued.data["new_run_id"]
