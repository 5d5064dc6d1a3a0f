"""``EventReplayer`` / ``replay_events`` (API.md §8.9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyworkflow.context.local import LocalContext
from pyworkflow.engine import events as ev
from pyworkflow.engine.replay import EventReplayer, replay_events


def seq(*events: ev.Event) -> list[ev.Event]:
    for i, e in enumerate(events):
        e.sequence = i
    return list(events)


async def test_empty_log_changes_nothing() -> None:
    ctx = LocalContext(durable=False)
    await replay_events(ctx, [])
    assert ctx.step_results == {} and ctx.pending_sleeps == {} and not ctx.is_replaying


async def test_step_results_are_deserialized_and_order_is_by_sequence() -> None:
    a = ev.create_step_completed_event("r", "s1", '{"__type__": "tuple", "value": [1, 2]}', "a")
    b = ev.create_step_completed_event("r", "s2", '"two"', "b")
    a.sequence, b.sequence = 5, 1
    ctx = LocalContext(durable=False)
    await EventReplayer().replay(ctx, [a, b])
    assert ctx.step_results == {"s2": "two", "s1": (1, 2)}


async def test_sleeps_pending_then_completed() -> None:
    resume_at = datetime.now(UTC) + timedelta(hours=1)
    started = ev.create_sleep_started_event("r", "sleep_1_60s", 60, resume_at)
    ctx = LocalContext(durable=False)
    await replay_events(ctx, seq(started))
    assert "sleep_1_60s" in ctx.pending_sleeps
    ctx2 = LocalContext(durable=False)
    await replay_events(
        ctx2,
        seq(
            ev.create_sleep_started_event("r", "sleep_1_60s", 60, resume_at),
            ev.create_sleep_completed_event("r", "sleep_1_60s"),
        ),
    )
    assert ctx2.is_sleep_completed("sleep_1_60s") and ctx2.pending_sleeps == {}


async def test_hooks_received_as_stored_and_expired_removed() -> None:
    ctx = LocalContext(durable=False)
    await replay_events(
        ctx,
        seq(
            ev.create_hook_created_event("r", "hook_a_1", token="r:x", name="a"),
            ev.create_hook_received_event("r", "hook_a_1", '{"ok": true}'),
            ev.create_hook_created_event("r", "hook_b_2", token="r:y", name="b"),
            ev.create_hook_expired_event("r", "hook_b_2"),
        ),
    )
    assert ctx.get_hook_result("hook_a_1") == '{"ok": true}'
    assert ctx.pending_hooks == {}
    assert not ctx.has_hook_result("hook_b_2")


async def test_full_mixed_log() -> None:
    ctx = LocalContext(durable=False)
    await replay_events(
        ctx,
        seq(
            ev.create_workflow_started_event("r", "wf", "[]", "{}"),
            ev.create_step_completed_event("r", "s1", "1", "a"),
            ev.create_sleep_started_event("r", "sleep_1_5s", 5, datetime.now(UTC)),
            ev.create_sleep_completed_event("r", "sleep_1_5s"),
            ev.create_step_completed_event("r", "s2", "2", "b"),
            ev.create_cancellation_requested_event("r", reason="stop"),
        ),
    )
    assert ctx.step_results == {"s1": 1, "s2": 2}
    assert ctx.completed_sleeps == {"sleep_1_5s"}
    assert ctx.is_cancellation_requested() and ctx.cancellation_reason == "stop"
    assert ctx.is_replaying is False
