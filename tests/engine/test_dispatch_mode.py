"""Dispatch mode end to end, with an in-process queue standing in for the broker.

This is the protocol the Celery runtime carries: activations turn step calls into
commands, a step worker runs a command and records its outcome once, the run is
resumed; timers come back through the tick.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest

from pyworkflow import RunStatus, step, workflow
from pyworkflow.engine import dispatch as dispatch_module
from pyworkflow.engine.dispatch import StepCommand
from pyworkflow.engine.ids import new_run_id
from pyworkflow.engine.remote_step import execute_step_command
from pyworkflow.runtime.driver import create_run, drive, new_run_record, resume_run
from pyworkflow.runtime.lease import new_owner
from pyworkflow.scheduler.tick import claim_wakeups
from pyworkflow.serialization.encoder import serialize_args, serialize_kwargs
from pyworkflow.storage.base import StorageBackend
from tests.support import eventually


class FakeBroker:
    """Queues commands; a worker loop runs them and resumes runs, like Celery would."""

    def __init__(self, store: StorageBackend) -> None:
        self.store = store
        self.queue: asyncio.Queue[StepCommand] = asyncio.Queue()
        self.sent: list[StepCommand] = []
        self.drop: set[tuple[str, int]] = set()  # (step name, dispatch no.) to lose

    async def send(self, commands: list[StepCommand]) -> None:
        for cmd in commands:
            self.sent.append(cmd)
            if (cmd.step_name, cmd.dispatch) not in self.drop:
                self.queue.put_nowait(cmd)

    async def start(self, wf: Any, *args: Any) -> str:
        run = new_run_record(
            new_run_id(), wf.__workflow_name__, serialize_args(*args), serialize_kwargs()
        )
        owner = new_owner()
        state = await create_run(self.store, run, owner)
        await drive(self.store, run, state, owner, dispatch=True, send=self.send)
        return run.run_id

    async def work(self, run_id: str, timeout: float = 10) -> RunStatus:
        async def finished() -> bool:
            while not self.queue.empty():
                cmd = self.queue.get_nowait()
                if await execute_step_command(self.store, cmd):
                    await resume_run(self.store, cmd.run_id, dispatch=True, send=self.send)
            for wake in await claim_wakeups(self.store, "tick", lookahead=0.0):
                await asyncio.sleep(wake.delay_seconds())
                await resume_run(self.store, wake.run_id, dispatch=True, send=self.send)
            run = await self.store.get_run(run_id)
            return run is not None and run.status in (RunStatus.COMPLETED, RunStatus.FAILED)

        await eventually(finished, timeout=timeout, interval=0.01)
        run = await self.store.get_run(run_id)
        assert run is not None
        return run.status


async def test_steps_dispatch_one_at_a_time_and_complete(store: StorageBackend) -> None:
    ran: collections.Counter[str] = collections.Counter()

    @step
    async def part(name: str) -> str:
        ran[name] += 1
        return name.upper()

    @workflow(name="dispatched")
    async def dispatched() -> str:
        return await part("a") + await part("b") + await part("c")

    broker = FakeBroker(store)
    run_id = await broker.start(dispatched)
    assert [c.step_name for c in broker.sent] == ["part"]  # only the first step so far
    assert await broker.work(run_id) is RunStatus.COMPLETED
    assert ran == {"a": 1, "b": 1, "c": 1}
    run = await store.get_run(run_id)
    assert run is not None and run.result == '"ABC"'
    assert await store.list_timers(run_id) == []


async def test_gather_dispatches_all_branches_in_one_activation(store: StorageBackend) -> None:
    @step
    async def square(i: int) -> int:
        return i * i

    @workflow(name="fan")
    async def fan() -> list[int]:
        return list(await asyncio.gather(*(square(i) for i in range(4))))

    broker = FakeBroker(store)
    run_id = await broker.start(fan)
    assert sorted(c.args_json for c in broker.sent) == ["[0]", "[1]", "[2]", "[3]"]
    assert await broker.work(run_id) is RunStatus.COMPLETED
    run = await store.get_run(run_id)
    assert run is not None and run.result == "[0, 1, 4, 9]"


async def test_duplicate_delivery_runs_the_body_once(store: StorageBackend) -> None:
    ran = 0

    @step
    async def once() -> int:
        nonlocal ran
        ran += 1
        return ran

    @workflow(name="dup")
    async def dup() -> int:
        return await once()

    broker = FakeBroker(store)
    run_id = await broker.start(dup)
    (cmd,) = broker.sent
    assert await execute_step_command(store, cmd) is True
    assert await execute_step_command(store, cmd) is True  # delivered again
    assert ran == 1
    broker.queue.get_nowait()  # the first delivery is already done
    await resume_run(store, run_id, dispatch=True, send=broker.send)
    assert (await store.get_run(run_id)).status is RunStatus.COMPLETED  # type: ignore[union-attr]
    assert len(await store.get_events(run_id, ["step.completed"])) == 1


async def test_retry_waits_on_a_timer_then_dispatches_attempt_two(store: StorageBackend) -> None:
    attempts = 0

    @step(max_retries=2, retry_delay=0.2)
    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("try again")
        return "ok"

    @workflow(name="dispatch_retry")
    async def dispatch_retry() -> str:
        return await flaky()

    broker = FakeBroker(store)
    run_id = await broker.start(dispatch_retry)
    assert await broker.work(run_id) is RunStatus.COMPLETED
    assert [c.attempt for c in broker.sent] == [1, 2]
    kinds = [e.type.value for e in await store.get_events(run_id)]
    assert kinds.count("step.retrying") == 1 and kinds.count("step.completed") == 1


async def test_lost_command_is_sent_again_by_the_watchdog(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch_module, "DEFAULT_REDISPATCH_SECONDS", 0.3)

    @step
    async def lonely() -> str:
        return "finally"

    @workflow(name="lost")
    async def lost() -> str:
        return await lonely()

    broker = FakeBroker(store)
    broker.drop.add(("lonely", 1))  # the broker loses the first message
    run_id = await broker.start(lost)
    assert await broker.work(run_id) is RunStatus.COMPLETED
    assert [c.dispatch for c in broker.sent] == [1, 2]
    assert len(await store.get_events(run_id, ["step.completed"])) == 1


async def test_outcome_landing_during_the_final_commit_is_not_lost(store: StorageBackend) -> None:
    """The step's outcome is appended after the workflow code finished but before its
    suspend commit: the commit merges it, and the run must be activated again (no
    resume message is ever sent here)."""

    @step
    async def quick() -> str:
        return "q"

    @workflow(name="late_merge")
    async def late_merge() -> str:
        return await quick()

    broker = FakeBroker(store)
    real_commit = store.commit
    injected = False

    async def commit(batch: Any) -> None:
        nonlocal injected
        update = batch.run_update
        if not injected and update is not None and update.status is RunStatus.SUSPENDED:
            injected = True
            (started,) = [e for e in batch.events if e.type.value == "step.started"]
            d = started.data
            cmd = StepCommand(batch.run_id, d["step_id"], d["step_name"], d["args"], d["kwargs"])
            await execute_step_command(store, cmd)  # a worker's outcome lands right now
        await real_commit(batch)

    store.commit = commit  # type: ignore[method-assign]
    run_id = await broker.start(late_merge)
    run = await store.get_run(run_id)
    assert injected and run is not None and run.status is RunStatus.COMPLETED
    assert await store.list_timers(run_id) == []


async def test_lost_resume_after_an_outcome_is_covered_by_the_guard(
    store: StorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch_module, "RESUME_GUARD_SECONDS", 0.2)

    @step
    async def first() -> int:
        return 1

    @step
    async def second() -> int:
        return 2

    @workflow(name="guarded")
    async def guarded() -> int:
        return await first() + await second()

    broker = FakeBroker(store)
    run_id = await broker.start(guarded)
    # The step worker records the outcome; the resume message it sends is lost.
    assert await execute_step_command(store, broker.queue.get_nowait()) is True
    assert [t.kind for t in await store.list_timers(run_id)] == ["guard"]
    assert await broker.work(run_id) is RunStatus.COMPLETED  # only timers drive it now
    assert await store.list_timers(run_id) == []
