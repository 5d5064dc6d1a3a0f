"""Hook lifecycle on every backend: expiry at the deadline, on_created, several hooks,
replay of a received hook, disposal when the run ends."""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime
from typing import Any

import pytest

from pyworkflow import (
    CancellationError,
    HookExpiredError,
    HookNotFoundError,
    RunStatus,
    cancel_workflow,
    get_workflow_result,
    hook,
    resume,
    resume_hook,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.core.exceptions import HookDisposedError
from pyworkflow.runtime.local import timer_service
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import HookStatus
from tests.support import eventually

TOKENS: dict[str, dict[str, str]] = {}  # run id -> hook name -> token


def keeper(name: str, delay: float = 0.0) -> Any:
    async def keep(token: str) -> None:
        if delay:
            await asyncio.sleep(delay)  # e.g. the e-mail carrying the token goes out
        TOKENS.setdefault(token.split(":", 1)[0], {})[name] = token

    return keep


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def ended(store: StorageBackend, run_id: str) -> bool:
    run = await store.get_run(run_id)
    return run is not None and run.status in (
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
    )


async def test_timeout_wakes_the_workflow_with_hook_expired_error(store: StorageBackend) -> None:
    seen_at: dict[str, datetime] = {}

    @workflow(name="hk_expiry_caught")
    async def caught() -> str:
        try:
            await hook("late", timeout="1s", on_created=keeper("late"))
        except HookExpiredError as error:
            seen_at.setdefault("caught", datetime.now(UTC))
            expired = error.hook_id
        await sleep(0.05)  # a later activation replays the expiry at the same call
        return f"gave up on {expired}"

    @workflow(name="hk_expiry_raised")
    async def raised() -> str:
        await hook("late", timeout=1, on_created=keeper("late"))
        return "received"

    timer_service(store)
    first = await start(caught, durable=True, storage=store)
    second = await start(raised, durable=True, storage=store)
    for run_id in (first, second):
        await eventually(lambda run_id=run_id: ended(store, run_id), timeout=10)

    assert await get_workflow_result(first, storage=store) == "gave up on hook_late_1"
    (row,) = await store.list_hooks(run_id=first)
    assert row.expires_at is not None
    lateness = (seen_at["caught"] - row.expires_at).total_seconds()
    assert 0 <= lateness < 1.5, lateness

    run = await store.get_run(second)
    assert run is not None and run.status is RunStatus.FAILED
    assert "Hook expired: hook_late_1" in (run.error or "")
    for run_id in (first, second):
        (row,) = await store.list_hooks(run_id=run_id)
        assert row.status is HookStatus.EXPIRED
        events = kinds(await store.get_events(run_id))
        assert events.count("hook.expired") == 1 and "hook.received" not in events
        assert await store.list_timers(run_id) == []
        with pytest.raises(HookExpiredError):
            await resume_hook(TOKENS[run_id]["late"], {"too": "late"}, storage=store)


async def test_on_created_can_resume_the_hook_inline(store: StorageBackend) -> None:
    """The payload arrives while the activation that created the hook still runs: it
    must not be lost (the run completes without any later nudge)."""

    @workflow(name="hk_inline")
    async def inline() -> Any:
        async def answer(token: str) -> None:
            await resume_hook(token, {"value": 5}, storage=store)

        payload = await hook("self", on_created=answer)
        return payload["value"] * 2

    run_id = await start(inline, durable=True, storage=store)
    await eventually(lambda: ended(store, run_id), timeout=5)
    assert await get_workflow_result(run_id, storage=store) == 10
    assert kinds(await store.get_events(run_id)).count("hook.received") == 1
    assert await store.list_timers(run_id) == []


async def test_inline_resume_leaves_no_expiry_timer_behind(store: StorageBackend) -> None:
    """A hook received while its creating activation ran must not get its expiry timer
    re-armed by that activation: it would wake the run for nothing at the deadline."""

    @workflow(name="hk_inline_timeout")
    async def inline() -> None:
        async def answer(token: str) -> None:
            await resume_hook(token, {"value": 5}, storage=store)

        await hook("self", timeout="1h", on_created=answer)
        await sleep("2h")

    run_id = await start(inline, durable=True, storage=store)
    await eventually(lambda: _has_event(store, run_id, "sleep.started"), timeout=5)
    timers = await store.list_timers(run_id)
    assert [t.kind for t in timers] == ["sleep"], [(t.kind, t.key) for t in timers]


async def _has_event(store: StorageBackend, run_id: str, kind: str) -> bool:
    return kind in kinds(await store.get_events(run_id))


async def test_on_created_failure_fails_the_run_and_disposes_the_hook(
    store: StorageBackend,
) -> None:
    tokens: list[str] = []

    @workflow(name="hk_on_created_fails")
    async def failing() -> str:
        async def notify(token: str) -> None:
            tokens.append(token)
            raise ConnectionError("mail server down")

        await hook("approval", timeout="1h", on_created=notify)
        return "unreachable"

    with pytest.raises(ConnectionError, match="mail server down"):
        await start(failing, durable=True, storage=store)
    ((run,), _) = await store.list_runs()
    assert run.status is RunStatus.FAILED and "mail server down" in (run.error or "")
    (row,) = await store.list_hooks(run_id=run.run_id)
    assert row.status is HookStatus.DISPOSED
    assert "hook.disposed" in kinds(await store.get_events(run.run_id))
    assert await store.list_timers(run.run_id) == []
    with pytest.raises(HookDisposedError):
        await resume_hook(tokens[0], {"ok": True}, storage=store)
    assert issubclass(HookDisposedError, HookNotFoundError)


async def test_caught_on_created_failure_replays_identically(store: StorageBackend) -> None:
    calls = collections.Counter[str]()

    @workflow(name="hk_on_created_caught")
    async def recovering() -> str:
        async def notify(token: str) -> None:
            calls["on_created"] += 1
            raise ValueError("bad address")

        try:
            await hook("approval", on_created=notify)
        except ValueError as error:
            calls["caught"] += 1
            outcome = f"recovered from {error}"
        await sleep(0.05)  # a second activation replays the failure
        return outcome

    run_id = await start(recovering, durable=True, storage=store)
    assert await resume(run_id, storage=store) in (None, "recovered from bad address")
    result = await get_workflow_result(run_id, storage=store, wait=True, timeout=5)
    assert result == "recovered from bad address"
    assert calls["on_created"] == 1 and calls["caught"] >= 2
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.status is HookStatus.DISPOSED


async def test_two_hooks_one_after_the_other(store: StorageBackend) -> None:
    @workflow(name="hk_two_sequential")
    async def two() -> list[Any]:
        first = await hook("first", on_created=keeper("first"))
        second = await hook("second", on_created=keeper("second"))
        return [first, second]

    run_id = await start(two, durable=True, storage=store)
    assert set(TOKENS[run_id]) == {"first"}
    result = await resume_hook(TOKENS[run_id]["first"], 1, storage=store)
    assert result.hook_id == "hook_first_1"
    assert set(TOKENS[run_id]) == {"first", "second"}
    assert (await resume_hook(TOKENS[run_id]["second"], 2, storage=store)).hook_id == (
        "hook_second_2"
    )
    assert await get_workflow_result(run_id, storage=store) == [1, 2]
    assert {h.status for h in await store.list_hooks(run_id=run_id)} == {HookStatus.RECEIVED}


@pytest.mark.parametrize("delay", [0.0, 0.05], ids=["instant", "slow_on_created"])
async def test_gather_of_two_hooks(store: StorageBackend, delay: float) -> None:
    @workflow(name="hk_gather")
    async def both() -> list[Any]:
        return list(
            await asyncio.gather(
                hook("left", on_created=keeper("left")),
                hook("right", on_created=keeper("right", delay)),
            )
        )

    run_id = await start(both, durable=True, storage=store)
    # Every hook created must have handed out its token, or nobody can ever resume it.
    rows = await store.list_hooks(run_id=run_id)
    assert {r.name for r in rows} <= set(TOKENS.get(run_id, {}))
    await eventually(lambda: "left" in TOKENS.get(run_id, {}), timeout=5)
    await resume_hook(TOKENS[run_id]["left"], "L", storage=store)
    await eventually(lambda: "right" in TOKENS[run_id], timeout=5)
    await resume_hook(TOKENS[run_id]["right"], "R", storage=store)
    assert await get_workflow_result(run_id, storage=store, wait=True, timeout=5) == ["L", "R"]
    assert kinds(await store.get_events(run_id)).count("hook.created") == 2


async def test_received_hook_replays_on_a_later_activation(store: StorageBackend) -> None:
    calls = collections.Counter[str]()

    @step
    async def charge(amount: int) -> str:
        calls["charge"] += 1
        return f"charged {amount}"

    @workflow(name="hk_replay")
    async def replay() -> list[Any]:
        payload = await hook("amount", on_created=keeper("amount"))
        calls["after_hook"] += 1
        receipt = await charge(payload["amount"])
        await sleep(0.05)
        return [payload, receipt]

    run_id = await start(replay, durable=True, storage=store)
    await resume_hook(TOKENS[run_id]["amount"], {"amount": 30}, storage=store)
    result = await get_workflow_result(run_id, storage=store, wait=True, timeout=5)
    assert result == [{"amount": 30}, "charged 30"]
    assert calls["charge"] == 1 and calls["after_hook"] == 2
    events = kinds(await store.get_events(run_id))
    assert events.count("hook.received") == 1 and events.count("hook.created") == 1


async def test_run_ending_disposes_its_pending_hook(store: StorageBackend) -> None:
    @workflow(name="hk_disposed_on_cancel")
    async def waiting() -> None:
        await hook("never", timeout="1h", on_created=keeper("never"))

    run_id = await start(waiting, durable=True, storage=store)
    assert await cancel_workflow(run_id, reason="not needed", storage=store) is True
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.status is HookStatus.DISPOSED
    assert await store.list_hooks(status=HookStatus.PENDING) == []
    with pytest.raises(HookDisposedError, match="no longer accepts payloads"):
        await resume_hook(TOKENS[run_id]["never"], {"late": True}, storage=store)
    assert "hook.received" not in kinds(await store.get_events(run_id))


async def test_compensation_can_wait_for_a_hook(store: StorageBackend) -> None:
    """Inside ``shield()`` a hook works as usual, even with cancellation requested."""

    @workflow(name="hk_shielded_hook")
    async def guarded() -> None:
        try:
            await sleep("1h")
        except CancellationError:
            async with shield():
                decision = await hook("refund_ok", on_created=keeper("refund_ok"))
                assert decision == {"refund": True}
            raise

    run_id = await start(guarded, durable=True, storage=store)
    assert await cancel_workflow(run_id, storage=store) is True
    await eventually(lambda: "refund_ok" in TOKENS.get(run_id, {}), timeout=5)
    run = await store.get_run(run_id)
    assert run is not None and run.status not in (RunStatus.CANCELLED, RunStatus.FAILED)
    await resume_hook(TOKENS[run_id]["refund_ok"], {"refund": True}, storage=store)
    await eventually(lambda: ended(store, run_id), timeout=5)
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    (cancelled,) = await store.get_events(run_id, ["workflow.cancelled"])
    assert cancelled.data["cleanup_completed"] is True
