"""Trying to break child workflows: a process dying between the parent's record of a
child and the child's creation, a storage outage there, a lost parent notification,
follow-ups that never ran after a terminal commit, a lost launch message. (A real
SIGKILL in the middle of a fan-out is in test_children_sigkill.py.)

The in-process crashes are precise: an engine function is replaced so that it fails
once at the chosen point, the way a dying process (a ``BaseException`` nobody
handles) or a dropped database connection would.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

import pyworkflow.engine.children as children_mod
import pyworkflow.engine.dispatch as dispatch_mod
import pyworkflow.engine.followups as followups_mod
import pyworkflow.runtime.driver as driver_mod
import pyworkflow.runtime.local as local_mod
from pyworkflow import (
    RunStatus,
    get_workflow_result,
    resume,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.runtime.driver import RunLinks
from pyworkflow.runtime.local import timer_service
from pyworkflow.storage.base import CommitBatch, StorageBackend
from tests.support import eventually

APP = Path(__file__).with_name("children_crash_app.py")
ROOT = Path(__file__).resolve().parents[2]


class ProcessDied(BaseException):
    """Stands for the process dying at this point: nothing in the engine handles it."""


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def cancel_reasons(store: StorageBackend, run_id: str) -> set[Any]:
    """The reasons of the run's cancellation requests (a request may be recorded
    more than once when two follow-up passes race; each must carry the reason)."""
    return {
        e.data.get("reason") for e in await store.get_events(run_id, ["cancellation.requested"])
    }


async def has_status(store: StorageBackend, run_id: str, status: RunStatus) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status is status


def fail_once(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, error: BaseException
) -> list[int]:
    """Replace ``module.name`` by a version that raises ``error`` on its first call."""
    real = getattr(module, name)
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return await real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)
    return calls


def simple_tree(ran: collections.Counter[str], prefix: str) -> Any:
    @step(name=f"{prefix}_work")
    async def work(x: int) -> int:
        ran["child step"] += 1
        return x * 3

    @workflow(name=f"{prefix}_child")
    async def child(x: int) -> int:
        ran["child body"] += 1
        return await work(x)

    @workflow(name=f"{prefix}_parent")
    async def parent(x: int) -> int:
        ran["parent body"] += 1
        return await start_child_workflow(child, x) + 1

    return parent


async def the_parent(store: StorageBackend, name: str) -> Any:
    runs, _ = await store.list_runs(query=name)
    (parent,) = [r for r in runs if r.workflow_name == name]
    return parent


async def test_death_between_the_record_and_the_child_run(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = collections.Counter[str]()
    parent = simple_tree(ran, "crx_death")
    calls = fail_once(monkeypatch, children_mod, "create_pending_run", ProcessDied())

    with pytest.raises(ProcessDied):
        await start(parent, 4, durable=True, storage=store)
    run = await the_parent(store, "crx_death_parent")
    # The parent recorded its child, but the child run does not exist.
    assert kinds(await store.get_events(run.run_id))[-1] == "child_workflow.started"
    assert await store.get_children(run.run_id) == []
    assert run.status is RunStatus.RUNNING
    assert await store.get_run_lease(run.run_id) is None  # resumable at once

    assert await resume(run.run_id, storage=store) == 13
    (started,) = await store.get_events(run.run_id, ["child_workflow.started"])
    (kid,) = await store.get_children(run.run_id)
    assert kid.run_id == started.data["child_run_id"]  # the recorded id, created once
    assert kid.status is RunStatus.COMPLETED and kid.nesting_depth == 1
    assert ran["child step"] == 1 and ran["child body"] == 1
    assert len(calls) == 2
    assert kinds(await store.get_events(run.run_id)).count("child_workflow.completed") == 1


def outage_once(
    monkeypatch: pytest.MonkeyPatch, store: StorageBackend, hit: Any
) -> list[CommitBatch]:
    """Make the storage's first commit matching ``hit(batch)`` fail like a dropped
    database connection; returns the batches that failed."""
    real = store.commit
    failed: list[CommitBatch] = []

    async def commit(batch: CommitBatch) -> None:
        if not failed and hit(batch):
            failed.append(batch)
            raise ConnectionError("connection to the database was lost")
        await real(batch)

    monkeypatch.setattr(store, "commit", commit)
    return failed


def creates_a_child(batch: CommitBatch) -> bool:
    return batch.create_run is not None and batch.create_run.parent_run_id is not None


def records_a_child_start(batch: CommitBatch) -> bool:
    return any(e.type.value == "child_workflow.started" for e in batch.events)


@pytest.mark.parametrize("where", ["child_workflow.started", "child run creation"])
async def test_storage_outage_around_a_child_start_does_not_fail_the_parent(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Like a step's completion lost to an outage (test_storage_outage.py): nothing
    about the workflow failed, so the parent must stay resumable, not end FAILED, and
    its code must never see the storage error."""
    ran = collections.Counter[str]()
    parent = simple_tree(ran, "crx_outage")
    hit = records_a_child_start if where == "child_workflow.started" else creates_a_child
    failed = outage_once(monkeypatch, store, hit)

    with pytest.raises(ConnectionError):
        await start(parent, 4, durable=True, storage=store)
    assert len(failed) == 1
    run = await the_parent(store, "crx_outage_parent")
    assert await store.get_events(run.run_id, ["workflow.failed"]) == []
    assert run.status is RunStatus.RUNNING
    assert await resume(run.run_id, storage=store) == 13
    assert len(await store.get_children(run.run_id)) == 1
    assert ran["child step"] == 1


async def test_lost_notification_is_repaired_by_the_parents_next_activation(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = collections.Counter[str]()
    parent = simple_tree(ran, "crx_lost")
    hiccup = ConnectionError("parent's storage unreachable")
    calls = fail_once(monkeypatch, followups_mod, "_notify_parent", hiccup)

    parent_id = await start(parent, 5, durable=True, storage=store)
    (kid,) = await store.get_children(parent_id)
    assert kid.status is RunStatus.COMPLETED
    assert len(calls) == 1
    # The child ended but its parent never heard: it waits, suspended.
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    assert "child_workflow.completed" not in kinds(await store.get_events(parent_id))
    # The child's follow-up timer is still armed: it guarantees the notification.
    assert [t.kind for t in await store.list_timers(kid.run_id)] == ["followup"]

    assert await resume(parent_id, storage=store) == 16
    assert ran == {"parent body": 2, "child body": 1, "child step": 1}
    assert kinds(await store.get_events(parent_id)).count("child_workflow.completed") == 1

    # The follow-up timer firing late changes nothing (the outcome is recorded once).
    assert await resume(kid.run_id, storage=store) == 15
    assert kinds(await store.get_events(parent_id)).count("child_workflow.completed") == 1
    assert await store.list_timers(kid.run_id) == []
    assert await has_status(store, parent_id, RunStatus.COMPLETED)


async def test_resuming_an_ended_child_does_its_missed_followups(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = collections.Counter[str]()
    parent = simple_tree(ran, "crx_missed")
    calls = fail_once(monkeypatch, driver_mod, "run_followups", ConnectionError("hiccup"))

    parent_id = await start(parent, 2, durable=True, storage=store)
    (kid,) = await store.get_children(parent_id)
    assert kid.status is RunStatus.COMPLETED and len(calls) == 1
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    assert "followup" in [t.kind for t in await store.list_timers(kid.run_id)]

    # What the follow-up timer does when it fires: resume the ended run.
    assert await resume(kid.run_id, storage=store) == 6
    assert await has_status(store, parent_id, RunStatus.COMPLETED)
    assert await get_workflow_result(parent_id, storage=store) == 7
    assert await store.list_timers(kid.run_id) == []
    assert await store.list_timers(parent_id) == []
    assert ran == {"parent body": 2, "child body": 1, "child step": 1}


async def test_death_right_after_the_childs_terminal_commit(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the child's terminal commit, before any follow-up: the
    parent (same process) dies with it, mid-activation."""
    ran = collections.Counter[str]()
    parent = simple_tree(ran, "crx_died")
    fail_once(monkeypatch, driver_mod, "run_followups", ProcessDied())

    with pytest.raises(ProcessDied):
        await start(parent, 1, durable=True, storage=store)
    run = await the_parent(store, "crx_died_parent")
    assert run.status is RunStatus.RUNNING
    (kid,) = await store.get_children(run.run_id)
    assert kid.status is RunStatus.COMPLETED
    assert [t.kind for t in await store.list_timers(kid.run_id)] == ["followup"]

    # A restarted process fires the child's follow-up timer: the parent hears, wakes
    # and completes.
    assert await resume(kid.run_id, storage=store) == 3
    assert await has_status(store, run.run_id, RunStatus.COMPLETED)
    assert await get_workflow_result(run.run_id, storage=store) == 4
    assert ran["child step"] == 1 and ran["child body"] == 1
    assert kinds(await store.get_events(run.run_id)).count("child_workflow.completed") == 1
    assert await _no_timers(store, run.run_id, kid.run_id)


async def test_followup_timer_fires_by_itself(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = collections.Counter[str]()
    parent = simple_tree(ran, "crx_timer")
    monkeypatch.setattr(followups_mod, "FOLLOWUP_DELAY_SECONDS", 0.3)
    fail_once(monkeypatch, driver_mod, "run_followups", ConnectionError("hiccup"))

    timer_service(store)
    parent_id = await start(parent, 3, durable=True, storage=store)
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    # Nobody resumes anything: the timer service fires the child's follow-up timer.
    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=10)
    assert result == 10
    (kid,) = await store.get_children(parent_id)
    await eventually(lambda: _no_timers(store, parent_id, kid.run_id), timeout=10)
    assert ran["child step"] == 1


async def test_missed_close_policy_is_applied_on_resume(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent completed but died before cancelling its unfinished child."""
    from pyworkflow import sleep

    @workflow(name="crx_orphan")
    async def orphan() -> str:
        await sleep("1h")
        return "never"

    @workflow(name="crx_abandoning")
    async def abandoning() -> str:
        await start_child_workflow(orphan, wait_for_completion=False)
        return "left"

    # The parent's follow-ups are the first to run: the child is only launched in
    # the background and has not ended.
    fail_once(monkeypatch, driver_mod, "run_followups", ProcessDied())
    with pytest.raises(ProcessDied):
        await start(abandoning, durable=True, storage=store)
    parent = await the_parent(store, "crx_abandoning")
    assert parent.status is RunStatus.COMPLETED
    (kid,) = await store.get_children(parent.run_id)
    await eventually(lambda: has_status(store, kid.run_id, RunStatus.SUSPENDED), timeout=10)
    assert "followup" in [t.kind for t in await store.list_timers(parent.run_id)]

    assert await resume(parent.run_id, storage=store) == "left"
    await eventually(lambda: has_status(store, kid.run_id, RunStatus.CANCELLED), timeout=10)
    assert await cancel_reasons(store, kid.run_id) == {f"Parent workflow {parent.run_id} completed"}
    await eventually(lambda: _no_timers(store, parent.run_id, kid.run_id), timeout=10)


async def test_lost_launch_is_covered_by_the_childs_resume_guard(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message that should start a child is lost (on Celery: a broker restart):
    the resume guard armed with the child run starts it anyway."""
    ran = collections.Counter[str]()
    parent = simple_tree(ran, "crx_lost_launch")
    monkeypatch.setattr(dispatch_mod, "RESUME_GUARD_SECONDS", 0.3)
    real_links = local_mod.links_for
    lost: list[str] = []

    def lossy_links(storage: StorageBackend) -> RunLinks:
        links = real_links(storage)

        async def launch(run_id: str, wait: bool) -> None:
            if not lost:
                lost.append(run_id)  # dropped on the floor
                return
            await links.launch(run_id, wait)

        return RunLinks(launch, links.wake, links.follow_continuations)

    monkeypatch.setattr(local_mod, "links_for", lossy_links)
    timer_service(store)
    parent_id = await start(parent, 7, durable=True, storage=store)
    (kid,) = await store.get_children(parent_id)
    assert lost == [kid.run_id]
    assert kid.status is RunStatus.PENDING
    assert await has_status(store, parent_id, RunStatus.SUSPENDED)
    result = await get_workflow_result(parent_id, storage=store, wait=True, timeout=10)
    assert result == 22
    assert ran == {"parent body": 2, "child body": 1, "child step": 1}
    await eventually(lambda: _no_timers(store, parent_id, kid.run_id), timeout=10)


async def _no_timers(store: StorageBackend, *run_ids: str) -> bool:
    for run_id in run_ids:
        if await store.list_timers(run_id):
            return False
    return True
