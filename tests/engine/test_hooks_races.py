"""Racing deliveries: many resume_hook calls with one token, and delivery vs. expiry.

A token resumes its hook once; received and expired exclude each other, and what the
workflow saw always matches what was recorded.
"""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime
from typing import Any

import pytest

from pyworkflow import (
    HookAlreadyReceivedError,
    HookExpiredError,
    RunStatus,
    cancel_workflow,
    get_workflow_result,
    hook,
    resume,
    resume_hook,
    start,
    step,
    workflow,
)
from pyworkflow.core.exceptions import HookDisposedError
from pyworkflow.primitives.resume_hook import ResumeResult
from pyworkflow.runtime.local import timer_service
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import HookStatus
from tests.support import eventually

TOKENS: dict[str, str] = {}


async def keep(token: str) -> None:
    TOKENS[token.split(":", 1)[0]] = token


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def terminal(store: StorageBackend, run_id: str) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status in (RunStatus.COMPLETED, RunStatus.FAILED)


@pytest.mark.parametrize("store", ["memory", "file", "sqlite", "postgres"], indirect=True)
async def test_twenty_concurrent_deliveries_one_wins(store: StorageBackend) -> None:
    after_hook = collections.Counter[str]()

    @step
    async def book(payload: dict[str, Any]) -> int:
        after_hook["book"] += 1
        return int(payload["i"])

    @workflow(name="hk_race_deliveries")
    async def contended() -> int:
        payload = await hook("race", on_created=keep)
        return await book(payload)

    run_id = await start(contended, durable=True, storage=store)
    token = TOKENS[run_id]
    outcomes = await asyncio.gather(
        *(resume_hook(token, {"i": i}, storage=store) for i in range(20)),
        return_exceptions=True,
    )
    wins = [o for o in outcomes if isinstance(o, ResumeResult)]
    losses = [o for o in outcomes if not isinstance(o, ResumeResult)]
    assert len(wins) == 1, outcomes
    assert all(isinstance(o, HookAlreadyReceivedError) for o in losses), losses

    await eventually(lambda: terminal(store, run_id), timeout=10)
    received = await store.get_events(run_id, ["hook.received"])
    assert len(received) == 1
    winner = outcomes.index(wins[0])
    assert await get_workflow_result(run_id, storage=store) == winner
    assert after_hook["book"] == 1
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.status is HookStatus.RECEIVED and row.payload == received[0].data["payload"]
    assert await store.list_timers(run_id) == []


async def _race_one(store: StorageBackend, run_id: str, offset: float) -> Any:
    """Deliver at the hook's deadline shifted by ``offset`` seconds, while an
    activation (the timer, and an explicit resume) tries to expire it."""
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.expires_at is not None
    delay = (row.expires_at - datetime.now(UTC)).total_seconds() + offset
    await asyncio.sleep(max(0.0, delay))
    delivered, _ = await asyncio.gather(
        resume_hook(TOKENS[run_id], {"n": 1}, storage=store),
        resume(run_id, storage=store),
        return_exceptions=True,
    )
    return delivered


async def test_delivery_racing_the_expiry_settles_the_hook_once(store: StorageBackend) -> None:
    @workflow(name="hk_race_expiry")
    async def deadline_flow() -> str:
        try:
            payload = await hook("deadline", timeout=0.4, on_created=keep)
        except HookExpiredError:
            return "expired"
        return f"received {payload['n']}"

    timer_service(store)
    offsets = [(i - 5) * 0.001 for i in range(10)]  # -5 ms .. +4 ms around the deadline
    run_ids = [await start(deadline_flow, durable=True, storage=store) for _ in offsets]
    delivered = await asyncio.gather(
        *(_race_one(store, run_id, offset) for run_id, offset in zip(run_ids, offsets, strict=True))
    )
    for run_id in run_ids:
        await eventually(lambda run_id=run_id: terminal(store, run_id), timeout=10)

    for run_id, outcome in zip(run_ids, delivered, strict=True):
        events = kinds(await store.get_events(run_id))
        settled = [k for k in events if k in ("hook.received", "hook.expired")]
        assert len(settled) == 1, (run_id, events)
        result = await get_workflow_result(run_id, storage=store)
        (row,) = await store.list_hooks(run_id=run_id)
        if settled == ["hook.received"]:
            assert isinstance(outcome, ResumeResult), outcome
            assert result == "received 1" and row.status is HookStatus.RECEIVED
        else:
            assert isinstance(outcome, HookExpiredError), outcome
            assert result == "expired" and row.status is HookStatus.EXPIRED
        assert await store.list_timers(run_id) == []


async def test_delivery_racing_a_cancellation_is_consistent(store: StorageBackend) -> None:
    """Whichever wins, a payload reported delivered is in the log, a refused one is not,
    and the run ends (completed with the payload, or cancelled) instead of waiting."""

    @workflow(name="hk_race_cancel")
    async def approval() -> Any:
        return await hook("approval", timeout="1h", on_created=keep)

    async def race(run_id: str, head_start: int) -> Any:
        async def deliver() -> Any:
            for _ in range(head_start):
                await asyncio.sleep(0)
            return await resume_hook(TOKENS[run_id], {"ok": True}, storage=store)

        delivered, cancelled = await asyncio.gather(
            deliver(), cancel_workflow(run_id, storage=store), return_exceptions=True
        )
        assert cancelled is True or cancelled is False, cancelled
        return delivered

    run_ids = [await start(approval, durable=True, storage=store) for _ in range(8)]
    delivered = await asyncio.gather(*(race(r, i) for i, r in enumerate(run_ids)))
    for run_id, outcome in zip(run_ids, delivered, strict=True):
        await eventually(lambda run_id=run_id: _ended(store, run_id), timeout=10)
        events = kinds(await store.get_events(run_id))
        (row,) = await store.list_hooks(run_id=run_id)
        run = await store.get_run(run_id)
        assert run is not None
        if isinstance(outcome, ResumeResult):
            assert events.count("hook.received") == 1 and row.status is HookStatus.RECEIVED
        else:
            assert isinstance(outcome, HookDisposedError), outcome
            assert "hook.received" not in events and row.status is HookStatus.DISPOSED
            assert run.status is RunStatus.CANCELLED
        if run.status is RunStatus.COMPLETED:
            assert await get_workflow_result(run_id, storage=store) == {"ok": True}
        assert await store.list_timers(run_id) == []


async def _ended(store: StorageBackend, run_id: str) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status in (
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
    )
