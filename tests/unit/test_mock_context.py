"""Tests for pyworkflow.context.mock.MockContext (API.md §1.7, §8.1, §8.3)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pyworkflow.context import MockContext, get_context, has_context
from pyworkflow.context.base import WorkflowContext
from pyworkflow.core.exceptions import CancellationError
from pyworkflow.core.step import step
from pyworkflow.primitives.shield import shield
from pyworkflow.primitives.sleep import sleep

# ---------------------------------------------------------------------- construction


def test_defaults() -> None:
    ctx = MockContext()
    assert isinstance(ctx, WorkflowContext)
    assert (ctx.run_id, ctx.workflow_name) == ("test_run", "test_workflow")
    assert ctx.skip_sleeps is True
    assert ctx.is_durable is False
    assert ctx.storage is None
    assert (ctx.mock_results, ctx.mock_events, ctx.mock_hooks) == ({}, {}, {})
    assert (ctx.steps, ctx.step_count, ctx.step_names) == ([], 0, [])
    assert (ctx.sleeps, ctx.sleep_count, ctx.total_sleep_seconds) == ([], 0, 0.0)
    assert ctx.events == []
    assert (ctx.hooks, ctx.hook_count, ctx.hook_names) == ([], 0, [])


def test_constructor_arguments_are_kept() -> None:
    results = {"a": 1}
    ctx = MockContext(
        run_id="r9",
        workflow_name="orders",
        skip_sleeps=False,
        mock_results=results,
        mock_events={"e": 2},
        mock_hooks={"h": 3},
    )
    assert (ctx.run_id, ctx.workflow_name, ctx.skip_sleeps) == ("r9", "orders", False)
    assert (ctx.mock_events, ctx.mock_hooks) == ({"e": 2}, {"h": 3})
    # The caller's dict is shared, so results added later are seen.
    assert ctx.mock_results is results


def test_sync_context_manager_sets_and_restores_the_context() -> None:
    assert not has_context()
    with MockContext() as ctx:
        assert get_context() is ctx
        with MockContext(run_id="inner") as inner:
            assert get_context() is inner
        assert get_context() is ctx
    assert not has_context()


async def test_async_context_manager_sets_and_restores_the_context() -> None:
    async with MockContext() as ctx:
        assert get_context() is ctx
    assert not has_context()


def test_repr_summarises_tracking() -> None:
    assert repr(MockContext(run_id="r1")) == "MockContext(run_id='r1', steps=0, sleeps=0, hooks=0)"


# ---------------------------------------------------------------------- ctx.run


async def test_run_returns_the_mock_result_without_calling() -> None:
    called = []

    async def charge(amount: int) -> str:
        called.append(amount)
        return "real"

    ctx = MockContext(mock_results={"charge": "mocked"})
    assert await ctx.run(charge, 5) == "mocked"
    assert called == []
    assert ctx.steps == [{"name": "charge", "args": (5,), "kwargs": {}, "mocked": True}]


async def test_run_mock_result_may_be_none() -> None:
    ctx = MockContext(mock_results={"noop": None})
    assert await ctx.run(lambda: "real", name="noop") is None


async def test_run_calls_async_and_sync_functions_when_not_mocked() -> None:
    async def add(a: int, b: int = 0) -> int:
        return a + b

    def mul(a: int, b: int) -> int:
        return a * b

    ctx = MockContext()
    assert await ctx.run(add, 1, b=2) == 3
    assert await ctx.run(mul, 3, 4) == 12
    assert ctx.step_names == ["add", "mul"]
    assert ctx.step_count == 2
    assert ctx.steps[0] == {"name": "add", "args": (1,), "kwargs": {"b": 2}, "mocked": False}


async def test_run_uses_the_explicit_name_for_lookup_and_tracking() -> None:
    ctx = MockContext(mock_results={"lookup": 7})
    assert await ctx.run(lambda: 1, name="lookup") == 7
    assert ctx.step_names == ["lookup"]


async def test_run_propagates_errors() -> None:
    async def boom() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await MockContext().run(boom)


# ---------------------------------------------------------------------- @step


async def test_step_runs_the_real_function_with_retries_and_is_recorded_once() -> None:
    attempts: list[int] = []

    @step(name="mock_ctx_flaky", max_retries=2, retry_delay=0)
    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return x * 10

    # mock_results only affects ctx.run, never an @step.
    ctx = MockContext(mock_results={"mock_ctx_flaky": "ignored"})
    with ctx:
        assert await flaky(4) == 40
    assert attempts == [4, 4]
    assert ctx.step_names == ["mock_ctx_flaky"]
    assert ctx.steps[0]["args"] == (4,)
    assert ctx.steps[0]["mocked"] is False
    ctx.assert_step_called("mock_ctx_flaky", times=1)


async def test_step_out_of_retries_raises_the_original_error() -> None:
    @step(name="mock_ctx_always_fails", max_retries=1, retry_delay=0)
    async def always_fails() -> None:
        raise ValueError("still broken")

    with MockContext() as ctx, pytest.raises(ValueError, match="still broken"):
        await always_fails()
    assert ctx.step_count == 1


async def test_step_under_cancellation_raises_before_running() -> None:
    ran = []

    @step(name="mock_ctx_never_runs")
    async def never_runs() -> None:
        ran.append(1)

    ctx = MockContext()
    ctx.request_cancellation("stop")
    with ctx, pytest.raises(CancellationError):
        await never_runs()
    assert ran == []
    assert ctx.steps == []


# ---------------------------------------------------------------------- sleep


async def test_sleep_primitive_is_recorded_and_skipped() -> None:
    start = time.monotonic()
    with MockContext() as ctx:
        await sleep("1h")
        await sleep(30)
        await sleep("1m30s")
    assert time.monotonic() - start < 1
    assert ctx.sleeps == [3600, 30, 90]
    assert ctx.sleep_count == 3
    assert ctx.total_sleep_seconds == 3720
    ctx.assert_slept()
    ctx.assert_slept(total_seconds=3720)


async def test_sleep_really_waits_when_skip_sleeps_is_false() -> None:
    ctx = MockContext(skip_sleeps=False)
    start = time.monotonic()
    await ctx.sleep(0.05)
    assert time.monotonic() - start >= 0.04
    assert ctx.sleeps == [0.05]


async def test_sleep_accepts_duration_strings_directly() -> None:
    ctx = MockContext()
    await ctx.sleep("2m")
    assert ctx.total_sleep_seconds == 120


def test_assert_slept_failures() -> None:
    ctx = MockContext()
    with pytest.raises(AssertionError, match="never did"):
        ctx.assert_slept()
    ctx.sleeps.append(5.0)
    with pytest.raises(AssertionError, match=r"Expected 10s of sleep in total, got 5\.0s"):
        ctx.assert_slept(total_seconds=10)


# ---------------------------------------------------------------------- hooks (§8.3)


async def test_hook_returns_mock_payload_and_tracks_the_call() -> None:
    tokens: list[str] = []

    async def on_created(token: str) -> None:
        tokens.append(token)

    ctx = MockContext(run_id="run_42", mock_hooks={"approval": {"approved": True}})
    payload = await ctx.hook("approval", timeout="24h", on_created=on_created)
    assert payload == {"approved": True}
    assert len(tokens) == 1
    token = tokens[0]
    assert token.startswith("run_42:")
    assert "approval" in token
    assert token == "run_42:hook_approval_1"
    assert ctx.hooks == [{"name": "approval", "token": token, "timeout": 86400}]
    assert ctx.hook_count == 1
    assert ctx.hook_names == ["approval"]


async def test_hook_timeouts_are_tracked_in_seconds() -> None:
    ctx = MockContext()
    await ctx.hook("a", timeout="1h")
    await ctx.hook("b", timeout=60)
    await ctx.hook("c")
    assert [h["timeout"] for h in ctx.hooks] == [3600, 60, None]


async def test_hook_default_payload_and_numbering() -> None:
    ctx = MockContext(run_id="r")
    assert await ctx.hook("review") == {"hook": "review", "mock": True}
    await ctx.hook("review")
    assert [h["token"] for h in ctx.hooks] == ["r:hook_review_1", "r:hook_review_2"]
    assert ctx.hook_names == ["review", "review"]


async def test_hook_records_before_calling_on_created() -> None:
    seen: list[int] = []
    ctx = MockContext()

    async def on_created(token: str) -> None:
        seen.append(ctx.hook_count)

    await ctx.hook("x", on_created=on_created)
    assert seen == [1]


# ---------------------------------------------------------------------- wait_for_event


async def test_wait_for_event_returns_mock_or_default_and_tracks() -> None:
    ctx = MockContext(mock_events={"paid": {"amount": 10}})
    assert await ctx.wait_for_event("paid", timeout=30) == {"amount": 10}
    assert await ctx.wait_for_event("shipped") == {"event": "shipped", "mock": True}
    assert ctx.events == [
        {"name": "paid", "timeout": 30},
        {"name": "shipped", "timeout": None},
    ]


# ---------------------------------------------------------------------- reset / asserts


async def test_reset_clears_tracking_but_keeps_configuration() -> None:
    ctx = MockContext(run_id="r", mock_results={"s": 1}, mock_hooks={"h": 2})
    await ctx.run(lambda: None, name="s")
    await ctx.sleep(5)
    await ctx.hook("h")
    await ctx.wait_for_event("e")
    ctx.reset()
    assert (ctx.steps, ctx.step_count, ctx.step_names) == ([], 0, [])
    assert (ctx.sleeps, ctx.sleep_count, ctx.total_sleep_seconds) == ([], 0, 0.0)
    assert ctx.events == []
    assert (ctx.hooks, ctx.hook_count, ctx.hook_names) == ([], 0, [])
    assert (ctx.mock_results, ctx.mock_hooks) == ({"s": 1}, {"h": 2})
    await ctx.hook("h")
    assert ctx.hooks[0]["token"] == "r:hook_h_1"  # numbering restarts


async def test_assert_step_called() -> None:
    ctx = MockContext(mock_results={"a": 1, "b": 2})
    await ctx.run(lambda: None, name="a")
    await ctx.run(lambda: None, name="a")
    await ctx.run(lambda: None, name="b")
    ctx.assert_step_called("a")
    ctx.assert_step_called("a", times=2)
    ctx.assert_step_called("c", times=0)
    with pytest.raises(AssertionError, match="'c' was not called"):
        ctx.assert_step_called("c")
    with pytest.raises(AssertionError, match="called 2 time\\(s\\), expected 1"):
        ctx.assert_step_called("a", times=1)


# ---------------------------------------------------------------------- cancellation (§8.1)


def test_starts_not_cancelled() -> None:
    ctx = MockContext()
    assert ctx.is_cancellation_requested() is False
    assert ctx.cancellation_blocked is False
    assert ctx.cancellation_reason is None
    ctx.check_cancellation()  # no-op


def test_request_and_check_cancellation() -> None:
    ctx = MockContext()
    ctx.request_cancellation("user asked")
    assert ctx.is_cancellation_requested() is True
    assert ctx._cancellation_reason == "user asked"
    with pytest.raises(CancellationError) as info:
        ctx.check_cancellation()
    assert str(info.value) == "Workflow was cancelled"
    assert info.value.reason == "user asked"
    no_reason = MockContext()
    no_reason.request_cancellation()
    with pytest.raises(CancellationError) as info:
        no_reason.check_cancellation()
    assert info.value.reason is None


def test_blocked_attribute_is_plain_and_suppresses_the_check() -> None:
    ctx = MockContext()
    ctx.request_cancellation("x")
    ctx._cancellation_blocked = True
    assert ctx.cancellation_blocked is True
    ctx.check_cancellation()
    ctx._cancellation_blocked = False
    with pytest.raises(CancellationError):
        ctx.check_cancellation()


async def test_shield_blocks_and_restores_with_nesting() -> None:
    with MockContext() as ctx:
        ctx.request_cancellation("stop")
        async with shield():
            assert ctx.cancellation_blocked is True
            ctx.check_cancellation()
            await ctx.sleep(1)  # durable calls work inside the shield
            async with shield():
                assert ctx.cancellation_blocked is True
            assert ctx.cancellation_blocked is True
        assert ctx.cancellation_blocked is False
        with pytest.raises(CancellationError):
            ctx.check_cancellation()
    assert ctx.sleeps == [1]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.run(lambda: 1, name="s"),
        lambda c: c.sleep(1),
        lambda c: c.hook("h"),
        lambda c: c.wait_for_event("e"),
    ],
    ids=["run", "sleep", "hook", "wait_for_event"],
)
async def test_durable_calls_raise_when_cancelled_and_record_nothing(call: Any) -> None:
    ctx = MockContext()
    ctx.request_cancellation("stop")
    with pytest.raises(CancellationError):
        await call(ctx)
    assert (ctx.steps, ctx.sleeps, ctx.hooks, ctx.events) == ([], [], [], [])


# ---------------------------------------------------------------------- a whole workflow


async def test_unit_testing_a_workflow_end_to_end() -> None:
    @step(name="mock_ctx_reserve", max_retries=0)
    async def reserve(item: str) -> str:
        return f"reserved:{item}"

    async def order_workflow(item: str) -> dict[str, Any]:
        ctx = get_context()
        reservation = await reserve(item)
        price = await ctx.run(lambda: 100, name="quote")
        await sleep("10m")
        decision = await ctx.hook("manager_approval", timeout=3600)
        return {"reservation": reservation, "price": price, "decision": decision}

    ctx = MockContext(mock_results={"quote": 42}, mock_hooks={"manager_approval": "ok"})
    async with ctx:
        result = await order_workflow("book")
    assert result == {"reservation": "reserved:book", "price": 42, "decision": "ok"}
    assert ctx.step_names == ["mock_ctx_reserve", "quote"]
    ctx.assert_slept(total_seconds=600)
    assert ctx.hook_names == ["manager_approval"]
    assert ctx.hooks[0]["timeout"] == 3600
