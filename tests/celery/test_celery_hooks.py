"""Hooks on the Celery runtime: real Redis, workflow and step workers, Beat.

The client (this process) resumes hooks with ``resume_hook`` under
``configure(default_runtime="celery")``: the payload is recorded in the shared storage
and a resume message is sent to the workers. Tokens come from ``on_created``, which
runs in the workflow worker (tests/celery/hook_flows.py writes them to a file). The
cluster runs with a 3 s resume guard, so a lost resume message is covered quickly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import pytest

from pyworkflow import (
    HookAlreadyReceivedError,
    HookExpiredError,
    HookNotFoundError,
    configure,
    resume_hook,
    start,
)
from pyworkflow.core.exceptions import HookDisposedError, HookValidationError
from pyworkflow.engine import dispatch
from pyworkflow.engine.hook_delivery import deliver_payload
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import TERMINAL_STATUSES, HookStatus, RunStatus, WorkflowRun
from tests.celery import hook_flows
from tests.celery.conftest import Cluster, new_cluster, start_default
from tests.celery.flows import runs_of
from tests.servers import RedisServer
from tests.support import descendants, eventually

assert celery_runtime.CeleryRuntime  # imported for its registration

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

#: A lost resume message is replaced by the run's resume guard after this long.
GUARD_SECONDS = 3.0


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The default topology, with a short resume guard in every process."""
    group = new_cluster(
        redis_server,
        tmp_path_factory.mktemp("hooks"),
        PYWORKFLOW_RESUME_GUARD_SECONDS=str(GUARD_SECONDS),
    )
    try:
        yield start_default(group)
    finally:
        group.close()


@pytest.fixture
async def client(
    celery_env: dict[str, Any], store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StorageBackend]:
    """This process as the application: Celery runtime, the cluster's storage and
    resume guard (``resume_hook`` arms the guard from here)."""
    monkeypatch.setattr(dispatch, "RESUME_GUARD_SECONDS", GUARD_SECONDS)
    configure(default_runtime="celery", storage=store)
    yield store


def _tag() -> str:
    return uuid.uuid4().hex[:10]


async def _launch(store: StorageBackend, wf: Any, *args: Any) -> str:
    return await start(wf, *args, runtime="celery", durable=True, storage=store)


async def _status(store: StorageBackend, run_id: str, *wanted: RunStatus) -> WorkflowRun:
    async def reached() -> WorkflowRun | None:
        run = await store.get_run(run_id)
        return run if run is not None and run.status in wanted else None

    run: WorkflowRun = await eventually(
        reached, timeout=30, interval=0.01, message=f"run never reached {wanted}"
    )
    return run


async def _finished(store: StorageBackend, run_id: str) -> WorkflowRun:
    return await _status(store, run_id, *TERMINAL_STATUSES)


async def _waiting_token(cluster: Cluster, store: StorageBackend, tag: str, run_id: str) -> str:
    """The run is SUSPENDED on its hook; the token on_created got in the workflow worker."""
    pid, token = await eventually(lambda: hook_flows.read_token(tag), timeout=20)
    assert pid == cluster.procs["wf"].pid, "on_created ran outside the workflow worker"
    assert token.startswith(f"{run_id}:hook_")
    await _status(store, run_id, RunStatus.SUSPENDED)
    return token


async def _count(store: StorageBackend, run_id: str, kind: str) -> int:
    return len(await store.get_events(run_id, [kind]))


def _forged(token: str, index: int) -> str:
    """``token`` with the character at ``index`` changed."""
    swapped = "A" if token[index] != "A" else "B"
    return token[:index] + swapped + token[index + 1 :]


async def test_typed_approval_hook_on_the_workers(cluster: Cluster, client: StorageBackend) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.approval_flow, tag, 21)
    token = await _waiting_token(cluster, store, tag, run_id)
    (pending,) = await store.list_hooks(run_id=run_id)
    assert pending.status is HookStatus.PENDING and pending.name == "celery_approval"
    before = len(await store.get_events(run_id))

    for bad in ({"approved": "maybe", "reviewer": "ada"}, {"approved": True, "reviewer": ""}):
        with pytest.raises(HookValidationError):
            await resume_hook(token, bad, storage=store)
    # Rejected before anything was written: the run still waits on the same hook.
    assert len(await store.get_events(run_id)) == before
    (still,) = await store.list_hooks(run_id=run_id)
    assert still.status is HookStatus.PENDING and still.payload is None
    assert (await _status(store, run_id, RunStatus.SUSPENDED)).status is RunStatus.SUSPENDED

    began = time.monotonic()
    result = await resume_hook(token, {"approved": True, "reviewer": "grace"}, storage=store)
    assert (result.run_id, result.status) == (run_id, "resumed")
    assert result.hook_id == pending.hook_id
    run = await _finished(store, run_id)
    print(f"\nresume_hook to COMPLETED: {time.monotonic() - began:.3f}s")
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.result is not None and '"42 paid, approved by grace' in run.result
    ((step_pid, _, _),) = runs_of("settle", tag)
    assert step_pid in descendants(cluster.procs["steps"].pid), "the step ran off the step worker"
    (received,) = await store.list_hooks(run_id=run_id)
    assert received.status is HookStatus.RECEIVED
    assert await _count(store, run_id, "hook.received") == 1

    with pytest.raises(HookAlreadyReceivedError):
        await resume_hook(token, {"approved": False, "reviewer": "eve"}, storage=store)
    assert await _count(store, run_id, "hook.received") == 1


async def test_a_token_with_one_character_changed_finds_nothing(
    cluster: Cluster, client: StorageBackend
) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.approval_flow, tag, 1)
    token = await _waiting_token(cluster, store, tag, run_id)
    before = len(await store.get_events(run_id))
    secret_at = token.rindex(":") + 1
    for index in (len(token) - 1, secret_at, len(run_id) - 1):  # secret, and run id
        with pytest.raises(HookNotFoundError):
            await resume_hook(_forged(token, index), {"approved": True, "reviewer": "x"})
    assert len(await store.get_events(run_id)) == before
    (hook,) = await store.list_hooks(run_id=run_id)
    assert hook.status is HookStatus.PENDING
    # The real token still works afterwards (and no guessing locked it out).
    await resume_hook(token, {"approved": False, "reviewer": "ada"})
    run = await _finished(store, run_id)
    assert run.status is RunStatus.COMPLETED and run.result == '"rejected by ada"'


async def test_hook_timeout_wakes_the_run_at_the_deadline(
    cluster: Cluster, client: StorageBackend
) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.deadline_flow, tag, "2s")
    token = await _waiting_token(cluster, store, tag, run_id)
    run = await _finished(store, run_id)  # nobody resumes it
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.result is not None and run.result.startswith('"escalated: Hook expired: hook_')
    assert len(runs_of("escalate", tag)) == 1

    (created,) = await store.get_events(run_id, ["hook.created"])
    (expired,) = await store.get_events(run_id, ["hook.expired"])
    due = datetime.fromisoformat(created.data["expires_at"])
    late = (expired.timestamp - due).total_seconds()
    print(f"\nhook timeout='2s': hook.expired recorded {late * 1000:.0f} ms after expires_at")
    assert 0 <= late < 1.5
    (hook,) = await store.list_hooks(run_id=run_id)
    assert hook.status is HookStatus.EXPIRED
    assert await store.list_timers(run_id) == []
    with pytest.raises((HookExpiredError, HookDisposedError)):
        await resume_hook(token, "too late")
    assert await _count(store, run_id, "hook.received") == 0


async def test_lost_resume_message_is_covered_by_the_resume_guard(
    cluster: Cluster, client: StorageBackend
) -> None:
    store, tag = client, _tag()
    run_id = await _launch(store, hook_flows.approval_flow, tag, 5)
    token = await _waiting_token(cluster, store, tag, run_id)
    # What resume_hook does, minus the resume message (as if the broker lost it).
    began = time.monotonic()
    await deliver_payload(store, token, {"approved": True, "reviewer": "guard"})
    timers = {t.kind for t in await store.list_timers(run_id)}
    assert timers == {"guard"}, timers  # the hook's expiry timer went with the payload
    run = await _finished(store, run_id)
    took = time.monotonic() - began
    print(f"\nresume message lost: run completed {took:.2f}s after the payload was recorded")
    assert run.status is RunStatus.COMPLETED and run.result is not None
    assert "approved by guard" in run.result
    assert GUARD_SECONDS - 0.5 <= took <= GUARD_SECONDS + 3.0
    assert len(runs_of("settle", tag)) == 1
    assert await _count(store, run_id, "hook.received") == 1
    assert await store.list_timers(run_id) == []
