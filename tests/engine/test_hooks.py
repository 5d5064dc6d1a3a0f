"""Hooks on every backend: typed payloads, tokens, validation, untrusted data, listing."""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
import pytest
from pydantic import BaseModel, ValidationError

from pyworkflow import (
    HookAlreadyReceivedError,
    HookNotFoundError,
    InvalidTokenError,
    RunStatus,
    define_hook,
    get_workflow_result,
    hook,
    resume_hook,
    start,
    workflow,
)
from pyworkflow.core.exceptions import HookValidationError, SerializationError
from pyworkflow.engine import storage_choice
from pyworkflow.engine.hooks import _schemas
from pyworkflow.primitives.resume_hook import ResumeResult, create_hook_token
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import HookStatus

# Tokens handed to on_created, by run id (the token starts with it).
TOKENS: dict[str, list[str]] = {}


async def keep(token: str) -> None:
    TOKENS.setdefault(token.split(":", 1)[0], []).append(token)


class Approval(BaseModel):
    approved: bool
    reviewer: str


approval_hook = define_hook("approval", Approval)


@workflow(name="hk_approval")
async def approval_flow(amount: int) -> dict[str, Any]:
    decision = await approval_hook(timeout="1h", on_created=keep)
    return {"amount": amount, "approved": decision.approved, "by": decision.reviewer}


def kinds(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def snapshot(store: StorageBackend, run_id: str) -> tuple[Any, ...]:
    """Everything a rejected delivery must leave untouched."""
    run = await store.get_run(run_id)
    assert run is not None
    events = [(e.event_id, e.sequence, e.type.value) for e in await store.get_events(run_id)]
    hooks = [h.to_dict() for h in await store.list_hooks(run_id=run_id)]
    timers = sorted(t.timer_id for t in await store.list_timers(run_id))
    return run.status, events, hooks, timers


async def test_typed_hook_waits_then_resumes_once(store: StorageBackend) -> None:
    before = datetime.now(UTC)
    run_id = await start(approval_flow, 120, durable=True, storage=store)
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED

    (row,) = await store.list_hooks(run_id=run_id)
    (token,) = TOKENS[run_id]
    assert row.status is HookStatus.PENDING and row.token == token
    assert row.hook_id == "hook_approval_1" and row.name == "approval"
    assert token.startswith(f"{run_id}:hook_approval_1:")
    assert len(token.rsplit(":", 1)[1]) >= 22  # >= 128 bits of secret
    schema = json.loads(row.payload_schema or "{}")
    assert set(schema["required"]) == {"approved", "reviewer"}
    assert row.expires_at is not None
    assert before + timedelta(minutes=59) < row.expires_at < before + timedelta(minutes=61)
    created = (await store.get_events(run_id, ["hook.created"]))[0]
    assert created.data["hook_id"] == "hook_approval_1" and created.data["token"] == token
    assert created.data["name"] == "approval" and created.data["expires_at"]

    result = await resume_hook(token, {"approved": True, "reviewer": "ada"}, storage=store)
    assert result == ResumeResult(run_id, "hook_approval_1", "resumed")
    # The local runtime resumed the run inline, before resume_hook returned.
    assert await get_workflow_result(run_id, storage=store) == {
        "amount": 120,
        "approved": True,
        "by": "ada",
    }
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.status is HookStatus.RECEIVED and row.received_at is not None
    assert json.loads(row.payload or "null") == {"approved": True, "reviewer": "ada"}
    events = await store.get_events(run_id)
    assert kinds(events) == [
        "workflow.started",
        "hook.created",
        "hook.received",
        "workflow.completed",
    ]
    assert await store.list_timers(run_id) == []

    with pytest.raises(HookAlreadyReceivedError):
        await resume_hook(token, {"approved": False, "reviewer": "eve"}, storage=store)
    assert kinds(await store.get_events(run_id)) == kinds(events)


async def test_forged_and_malformed_tokens_are_rejected(store: StorageBackend) -> None:
    run_id = await start(approval_flow, 1, durable=True, storage=store)
    (token,) = TOKENS[run_id]
    before = await snapshot(store, run_id)
    good = {"approved": True, "reviewer": "ada"}

    last = token[-1]
    wrong_secret = token[:-1] + ("A" if last != "A" else "B")
    position = len("run_") + 3
    wrong_run = token[:position] + ("0" if token[position] != "0" else "1") + token[position + 1 :]
    upstream_style = create_hook_token(run_id, "hook_approval_1")  # guessable: no secret
    for forged in (wrong_secret, wrong_run, upstream_style, token + "x", token[:-1]):
        with pytest.raises(HookNotFoundError):
            await resume_hook(forged, good, storage=store)
    for malformed in ("no-separator", ":hook_approval_1", f"{run_id}:", ""):
        with pytest.raises(InvalidTokenError, match="Invalid token format"):
            await resume_hook(malformed, good, storage=store)
    assert await snapshot(store, run_id) == before

    await resume_hook(token, good, storage=store)
    assert (await get_workflow_result(run_id, storage=store))["by"] == "ada"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"approved": True}, "reviewer"),
        ({"approved": "perhaps", "reviewer": "ada"}, "approved"),
    ],
)
async def test_invalid_payload_is_rejected_and_changes_nothing(
    store: StorageBackend, payload: dict[str, Any], field: str
) -> None:
    run_id = await start(approval_flow, 7, durable=True, storage=store)
    (token,) = TOKENS[run_id]
    before = await snapshot(store, run_id)

    with pytest.raises(HookValidationError) as info:
        await resume_hook(token, payload, storage=store)
    assert field in str(info.value) and "approval" in str(info.value)
    assert any(problem.startswith(field) for problem in info.value.errors)
    assert isinstance(info.value.validation_error, ValidationError)
    assert await snapshot(store, run_id) == before  # still SUSPENDED, nothing written

    await resume_hook(token, {"approved": False, "reviewer": "bob"}, storage=store)
    assert await get_workflow_result(run_id, storage=store) == {
        "amount": 7,
        "approved": False,
        "by": "bob",
    }


async def test_payload_that_is_not_json_data_is_rejected(store: StorageBackend) -> None:
    @workflow(name="hk_untyped")
    async def untyped() -> Any:
        return await hook("anything", on_created=keep)

    run_id = await start(untyped, durable=True, storage=store)
    before = await snapshot(store, run_id)
    with pytest.raises(SerializationError, match="anything"):
        await resume_hook(TOKENS[run_id][0], {"handle": object()}, storage=store)
    assert await snapshot(store, run_id) == before
    await resume_hook(TOKENS[run_id][0], {"tags": ["a", "b"]}, storage=store)
    assert await get_workflow_result(run_id, storage=store) == {"tags": ["a", "b"]}


class Shipment(BaseModel):
    tracking: str
    parcels: int


async def test_plain_hook_with_payload_schema(store: StorageBackend) -> None:
    @workflow(name="hk_shipment")
    async def shipment_flow() -> Any:
        payload = await hook("shipped", payload_schema=Shipment, on_created=keep)
        return [type(payload).__name__, payload]

    run_id = await start(shipment_flow, durable=True, storage=store)
    (token,) = TOKENS[run_id]
    (row,) = await store.list_hooks(run_id=run_id)
    assert row.expires_at is None and await store.list_timers(run_id) == []
    assert json.loads(row.payload_schema or "{}")["title"] == "Shipment"

    with pytest.raises(HookValidationError, match="parcels"):
        await resume_hook(token, {"tracking": "X1", "parcels": "several"}, storage=store)
    # A model instance is accepted as the payload; the workflow gets plain data.
    await resume_hook(token, Shipment(tracking="X1", parcels=2), storage=store)
    assert await get_workflow_result(run_id, storage=store) == [
        "dict",
        {"tracking": "X1", "parcels": 2},
    ]


async def test_json_schema_fallback_when_the_model_cannot_be_imported(
    store: StorageBackend,
) -> None:
    class Order(BaseModel):  # defined here: its import path cannot be resolved
        sku: str
        qty: int

    order_hook = define_hook("order", Order)

    @workflow(name="hk_local_model")
    async def order_flow() -> list[Any]:
        order = await order_hook(on_created=keep)
        return [order.sku, order.qty]

    run_id = await start(order_flow, durable=True, storage=store)
    (token,) = TOKENS[run_id]
    (row,) = await store.list_hooks(run_id=run_id)
    path = row.metadata["schema"]
    assert "<locals>" in path
    # A process without the model: only the JSON schema stored with the hook is left.
    _schemas.pop(path)
    try:
        before = await snapshot(store, run_id)
        for bad, field in (({"sku": "A"}, "qty"), ({"sku": "A", "qty": "lots"}, "qty")):
            with pytest.raises(HookValidationError, match=field) as info:
                await resume_hook(token, bad, storage=store)
            assert not isinstance(info.value.validation_error, ValidationError)
        assert await snapshot(store, run_id) == before
        await resume_hook(token, {"sku": "A", "qty": 3}, storage=store)
    finally:
        _schemas[path] = Order
    assert await get_workflow_result(run_id, storage=store) == ["A", 3]


def _crafted() -> dict[str, Any]:
    return {
        "blob": {
            "__type__": "cloudpickle",
            "value": base64.b64encode(cloudpickle.dumps(41)).decode(),
        },
        "error": {"__type__": "exception", "class": "mailbox.Error", "args": ["boom"]},
        "model": {"__type__": "pydantic", "class": "mailbox.Message", "value": {}},
        "when": {"__type__": "date", "value": "2026-01-02"},
    }


async def test_crafted_tagged_payload_reaches_the_workflow_as_plain_data(
    store: StorageBackend,
) -> None:
    seen: list[Any] = []

    @workflow(name="hk_untrusted")
    async def untrusted() -> str:
        payload = await hook("webhook", on_created=keep)
        seen.append(payload)
        return "done"

    mailbox_loaded = "mailbox" in sys.modules
    run_id = await start(untrusted, durable=True, storage=store)
    await resume_hook(TOKENS[run_id][0], _crafted(), storage=store)
    assert await get_workflow_result(run_id, storage=store) == "done"
    (payload,) = seen
    expected = _crafted()
    assert payload["blob"] == expected["blob"]  # never unpickled
    assert payload["error"] == expected["error"]  # never turned into an exception
    assert payload["model"] == expected["model"]
    # Even a harmless-looking tag in outside data stays data: the payload's own keys
    # are escaped when recorded, so nothing in it is ever read as a tag.
    assert payload["when"] == expected["when"]
    if not mailbox_loaded:
        assert "mailbox" not in sys.modules  # no class named by the payload was imported


async def test_crafted_payload_stays_data_when_the_workflow_returns_it(
    store: StorageBackend,
) -> None:
    """Whatever the workflow does with outside data, reading its result back must not
    unpickle it or import classes it names."""

    @workflow(name="hk_untrusted_echo")
    async def echo() -> Any:
        return await hook("webhook", on_created=keep)

    run_id = await start(echo, durable=True, storage=store)
    payload = _crafted()
    del payload["when"]
    await resume_hook(TOKENS[run_id][0], payload, storage=store)
    result = await get_workflow_result(run_id, storage=store)
    assert result == payload, f"stored outside data was decoded as trusted: {result!r}"


async def test_list_hooks_by_run_and_by_status(store: StorageBackend) -> None:
    first = await start(approval_flow, 1, durable=True, storage=store)
    second = await start(approval_flow, 2, durable=True, storage=store)
    await resume_hook(TOKENS[first][0], {"approved": True, "reviewer": "x"}, storage=store)

    assert [h.run_id for h in await store.list_hooks(run_id=first)] == [first]
    assert [h.run_id for h in await store.list_hooks(run_id=second)] == [second]
    pending = await store.list_hooks(status=HookStatus.PENDING)
    received = await store.list_hooks(status=HookStatus.RECEIVED)
    assert [(h.run_id, h.token) for h in pending] == [(second, TOKENS[second][0])]
    assert [(h.run_id, h.token) for h in received] == [(first, TOKENS[first][0])]
    assert len(await store.list_hooks()) == 2
    assert await store.list_hooks(run_id=first, status=HookStatus.PENDING) == []


async def test_resume_hook_without_storage_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage_choice, "_default_storage", None)
    with pytest.raises(RuntimeError, match="No storage backend configured"):
        await resume_hook("run_abc:hook_x_1:secret", {"ok": True})
