"""Tests for pyworkflow.context.step_context (API.md §1.7, §8.12)."""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pyworkflow.context import (
    LocalContext,
    MockContext,
    StepContext,
    get_step_context,
    get_step_context_class,
    has_step_context,
    set_step_context,
)
from pyworkflow.context.step_context import (
    _is_step_context_readonly,
    _reset_step_context,
    _reset_step_context_class,
    _reset_step_context_readonly,
    _set_step_context_class,
    _set_step_context_internal,
    _set_step_context_readonly,
)
from pyworkflow.engine.events import EventType
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.schemas import RunStatus, WorkflowRun


class Address(BaseModel):
    city: str
    zip_code: str = ""


class OrderContext(StepContext):
    workspace_id: str = ""
    user_id: str | None = None
    retries: int = 0
    address: Address | None = None


class StampedContext(StepContext):
    at: datetime


def _in_fresh_context(func: object) -> object:
    """Run a sync test body in a copied context so ContextVar writes cannot leak."""
    return contextvars.copy_context().run(func)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the model


def test_defaults_and_optional_fields() -> None:
    ctx = OrderContext()
    assert ctx.workspace_id == ""
    assert ctx.user_id is None
    assert ctx.address is None
    assert StepContext().to_dict() == {}


def test_frozen() -> None:
    ctx = OrderContext(workspace_id="ws")
    with pytest.raises(ValidationError):
        ctx.workspace_id = "other"


def test_extra_fields_are_forbidden() -> None:
    with pytest.raises(ValidationError):
        OrderContext(unknown="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        OrderContext.from_dict({"workspace_id": "ws", "unknown": "x"})


def test_with_updates_returns_a_validated_copy() -> None:
    original = OrderContext(workspace_id="ws")
    updated = original.with_updates(user_id="u1", retries=2)
    assert updated is not original
    assert type(updated) is OrderContext
    assert (updated.workspace_id, updated.user_id, updated.retries) == ("ws", "u1", 2)
    assert (original.user_id, original.retries) == (None, 0)
    with pytest.raises(ValidationError):
        original.with_updates(unknown=1)
    with pytest.raises(ValidationError):
        original.with_updates(retries="not a number")


def test_to_dict_from_dict_round_trip_with_nested_model() -> None:
    ctx = OrderContext(workspace_id="ws", address=Address(city="Oslo", zip_code="0150"))
    data = ctx.to_dict()
    assert data == {
        "workspace_id": "ws",
        "user_id": None,
        "retries": 0,
        "address": {"city": "Oslo", "zip_code": "0150"},
    }
    back = OrderContext.from_dict(data)
    assert back == ctx
    assert isinstance(back.address, Address)


def test_equality_and_hash_are_by_value() -> None:
    a = OrderContext(workspace_id="ws", user_id="u")
    b = OrderContext(workspace_id="ws", user_id="u")
    c = OrderContext(workspace_id="ws", user_id="v")
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


# ---------------------------------------------------------------------- get / set


async def test_get_without_a_context_raises() -> None:
    assert has_step_context() is False
    with pytest.raises(RuntimeError, match="No step context available"):
        get_step_context()


async def test_set_stores_and_replaces() -> None:
    first = OrderContext(workspace_id="ws1")
    await set_step_context(first)
    assert has_step_context() is True
    assert get_step_context() is first
    second = first.with_updates(user_id="u")
    await set_step_context(second)
    assert get_step_context() is second


async def test_set_is_a_coroutine_function() -> None:
    coro = set_step_context(OrderContext())
    assert hasattr(coro, "__await__")
    await coro


async def test_set_rejects_non_step_contexts() -> None:
    with pytest.raises(TypeError, match="Expected StepContext instance, got dict"):
        await set_step_context({"workspace_id": "ws"})  # type: ignore[arg-type]
    assert has_step_context() is False


async def test_read_only_mode_refuses_changes() -> None:
    token = _set_step_context_readonly(True)
    try:
        with pytest.raises(RuntimeError, match="Cannot modify step context within a step"):
            await set_step_context(OrderContext())
        # Read-only is checked first, even for a bad argument.
        with pytest.raises(RuntimeError, match="Cannot modify step context within a step"):
            await set_step_context("nope")  # type: ignore[arg-type]
    finally:
        _reset_step_context_readonly(token)
    assert has_step_context() is False
    await set_step_context(OrderContext())  # allowed again


def test_context_class_is_none_by_default() -> None:
    assert get_step_context_class() is None


def test_internal_setters_are_token_scoped() -> None:
    def body() -> None:
        outer = OrderContext(workspace_id="outer")
        t1 = _set_step_context_internal(outer)
        t2 = _set_step_context_internal(OrderContext(workspace_id="inner"))
        assert get_step_context().workspace_id == "inner"  # type: ignore[attr-defined]
        _reset_step_context(t2)
        assert get_step_context() is outer
        _reset_step_context(t1)
        assert has_step_context() is False

        t3 = _set_step_context_class(OrderContext)
        t4 = _set_step_context_class(StampedContext)
        assert get_step_context_class() is StampedContext
        _reset_step_context_class(t4)
        assert get_step_context_class() is OrderContext
        _reset_step_context_class(t3)
        assert get_step_context_class() is None

    _in_fresh_context(body)


def test_readonly_setter_is_token_scoped() -> None:
    def body() -> None:
        assert _is_step_context_readonly() is False
        t1 = _set_step_context_readonly(True)
        t2 = _set_step_context_readonly(False)
        assert _is_step_context_readonly() is False
        _reset_step_context_readonly(t2)
        assert _is_step_context_readonly() is True
        _reset_step_context_readonly(t1)
        assert _is_step_context_readonly() is False

    _in_fresh_context(body)


async def test_set_under_mock_context_only_sets_the_variable() -> None:
    with MockContext():
        await set_step_context(OrderContext(workspace_id="ws"))
        assert get_step_context() == OrderContext(workspace_id="ws")


async def test_set_under_transient_local_context_only_sets_the_variable() -> None:
    ctx = LocalContext(durable=False)
    assert ctx.activation is None
    with ctx:
        await set_step_context(OrderContext(workspace_id="ws"))
    assert get_step_context().workspace_id == "ws"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- durable path
# The workflow context is entered inside each test (``with ctx:``) rather than in the
# fixture, so the tests do not depend on fixtures sharing the test's contextvars.


@pytest.fixture
async def durable() -> tuple[LocalContext, InMemoryStorageBackend]:
    storage = InMemoryStorageBackend()
    await storage.create_run(WorkflowRun(run_id="r1", workflow_name="w", status=RunStatus.RUNNING))
    ctx = LocalContext(run_id="r1", workflow_name="w", storage=storage, durable=True)
    assert ctx.activation is not None
    return ctx, storage


async def _context_events(storage: InMemoryStorageBackend) -> list[dict[str, Any]]:
    events = await storage.get_events("r1")
    return [e.data for e in events if e.type == EventType.CONTEXT_UPDATED]


async def test_durable_set_records_an_event_and_stores_the_context(
    durable: tuple[LocalContext, InMemoryStorageBackend],
) -> None:
    ctx, storage = durable
    with ctx:
        await set_step_context(OrderContext(workspace_id="ws", user_id="u1"))
    expected = {"workspace_id": "ws", "user_id": "u1", "retries": 0, "address": None}
    recorded = await _context_events(storage)
    assert len(recorded) == 1
    assert set(recorded[0]) == {"context", "updated_at"}
    assert recorded[0]["context"] == expected
    datetime.fromisoformat(recorded[0]["updated_at"])  # an ISO timestamp
    assert await storage.get_run_context("r1") == expected
    run = await storage.get_run("r1")
    assert run is not None and run.context == expected
    assert get_step_context() == OrderContext(workspace_id="ws", user_id="u1")


async def test_durable_event_follows_the_run_log(
    durable: tuple[LocalContext, InMemoryStorageBackend],
) -> None:
    ctx, storage = durable
    with ctx:
        await set_step_context(OrderContext(workspace_id="a"))
        await set_step_context(OrderContext(workspace_id="b"))
    events = await storage.get_events("r1")
    assert [e.sequence for e in events] == [0, 1]
    assert all(e.run_id == "r1" for e in events)


async def test_durable_set_records_each_change_but_not_a_repeat(
    durable: tuple[LocalContext, InMemoryStorageBackend],
) -> None:
    ctx, storage = durable
    first = OrderContext(workspace_id="ws")
    with ctx:
        await set_step_context(first)
        await set_step_context(OrderContext(workspace_id="ws"))  # same value: no new event
        await set_step_context(first.with_updates(retries=1))
    recorded = await _context_events(storage)
    assert [d["context"]["retries"] for d in recorded] == [0, 1]
    assert (await storage.get_run_context("r1"))["retries"] == 1


async def test_durable_context_is_stored_as_json_and_restorable(
    durable: tuple[LocalContext, InMemoryStorageBackend],
) -> None:
    ctx, storage = durable
    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    with ctx:
        await set_step_context(StampedContext(at=at))
    stored = await storage.get_run_context("r1")
    assert stored == {"at": "2024-05-01T12:30:00Z"}
    assert StampedContext.from_dict(stored) == StampedContext(at=at)


async def test_durable_set_in_read_only_mode_records_nothing(
    durable: tuple[LocalContext, InMemoryStorageBackend],
) -> None:
    ctx, storage = durable
    token = _set_step_context_readonly(True)
    try:
        with ctx, pytest.raises(RuntimeError):
            await set_step_context(OrderContext())
    finally:
        _reset_step_context_readonly(token)
    assert await _context_events(storage) == []
    assert await storage.get_run_context("r1") == {}
