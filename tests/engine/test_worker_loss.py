"""Worker-loss recovery (API.md §5.5): a run whose activation died is picked up again."""

from __future__ import annotations

import asyncio

from pyworkflow import RunStatus, step, workflow
from pyworkflow.engine.ids import new_run_id
from pyworkflow.engine.outcome import Completed, Failed
from pyworkflow.runtime.driver import create_run, new_run_record, resume_run
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import StorageBackend

DEAD = "another-host:4242:deadbeef"  # a holder on another machine: only expiry frees it


@step
async def lost_step() -> str:
    return "recovered"


@workflow(name="lost_wf")
async def lost_wf() -> str:
    return await lost_step()


async def _orphan(store: StorageBackend, **settings: object) -> str:
    """A run created by an activation that died at once, its lease left to expire."""
    run = new_run_record(new_run_id(), "lost_wf", serialize_args(), serialize_kwargs(), **settings)  # type: ignore[arg-type]
    await create_run(store, run, DEAD)
    await store.acquire_run_lease(run.run_id, DEAD, 0.05, run.created_at)
    await asyncio.sleep(0.1)
    return run.run_id


async def test_lost_run_is_recorded_as_interrupted_and_completes(store: StorageBackend) -> None:
    run_id = await _orphan(store)
    outcome = await resume_run(store, run_id, recovery=True)
    assert isinstance(outcome, Completed) and outcome.result == "recovered"
    (event,) = await store.get_events(run_id, ["workflow.interrupted"])
    assert event.data["reason"] == "worker_lost"
    assert event.data["worker_id"] == DEAD and event.data["recovery_attempt"] == 1
    run = await store.get_run(run_id)
    assert run is not None and run.recovery_attempts == 1
    assert run.status is RunStatus.COMPLETED


async def test_recovery_disabled_fails_the_run(store: StorageBackend) -> None:
    run_id = await _orphan(store, recover_on_worker_loss=False)
    outcome = await resume_run(store, run_id, recovery=True)
    assert isinstance(outcome, Failed)
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error == "Worker lost and recovery is disabled"


async def test_recovery_attempts_are_bounded(store: StorageBackend) -> None:
    run_id = await _orphan(store, max_recovery_attempts=1)
    await store.update_run_recovery_attempts(run_id, 1)
    outcome = await resume_run(store, run_id, recovery=True)
    assert isinstance(outcome, Failed)
    run = await store.get_run(run_id)
    assert run is not None and run.error == "Exceeded max recovery attempts (1)"


async def test_a_released_lease_is_not_a_worker_loss(store: StorageBackend) -> None:
    run_id = await _orphan(store)
    await store.release_run_lease(run_id, DEAD)  # e.g. after a storage outage
    outcome = await resume_run(store, run_id, recovery=True)
    assert isinstance(outcome, Completed)
    assert await store.get_events(run_id, ["workflow.interrupted"]) == []
