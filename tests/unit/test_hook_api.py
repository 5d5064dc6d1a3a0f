"""Hook and cancellation API without storage: tokens, typed hooks, errors, contexts
(API.md §1.4, §8.1, §8.3). MockContext's own hook/shield tests are in test_mock_context."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pyworkflow import CancellationError, WorkflowError, hook, shield, sleep, step
from pyworkflow.context import MockContext
from pyworkflow.context.local import LocalContext
from pyworkflow.core.exceptions import (
    HookDisposedError,
    HookNotFoundError,
    InvalidTokenError,
)
from pyworkflow.engine import events as ev
from pyworkflow.engine.hooks import new_hook_token, split_token
from pyworkflow.primitives.define_hook import HookValidationError, TypedHook, define_hook
from pyworkflow.primitives.resume_hook import (
    HOOK_TOKEN_SEPARATOR,
    ResumeResult,
    create_hook_token,
    parse_hook_token,
)
from pyworkflow.storage.memory import InMemoryStorageBackend


class Approval(BaseModel):
    approved: bool
    reviewer: str


# ---------------------------------------------------------------------- tokens (§8.3)


def test_parse_splits_on_the_first_separator() -> None:
    assert HOOK_TOKEN_SEPARATOR == ":"
    assert parse_hook_token("run_abc:hook:with:colons") == ("run_abc", "hook:with:colons")
    assert parse_hook_token("run_1:hook_a_1") == ("run_1", "hook_a_1")


@pytest.mark.parametrize("token", [":x", "x:", "no-separator", "", ":"])
def test_parse_rejects_malformed_tokens(token: str) -> None:
    with pytest.raises(InvalidTokenError, match="Invalid token format"):
        parse_hook_token(token)


def test_create_hook_token_is_upstreams_format_and_round_trips() -> None:
    token = create_hook_token("run_1", "hook_x_1")
    assert token == "run_1:hook_x_1"
    assert parse_hook_token(token) == ("run_1", "hook_x_1")


def test_engine_tokens_carry_an_unguessable_secret() -> None:
    tokens = {new_hook_token("run_1", "hook_approval_1") for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        run_id, hook_id, secret = split_token(token)
        assert (run_id, hook_id) == ("run_1", "hook_approval_1")
        assert len(secret) >= 32 and ":" not in secret  # 192 bits, url-safe
        assert parse_hook_token(token)[0] == "run_1"
    assert split_token("run_1:hook_approval_1") == ("run_1", "hook_approval_1", "")


# ---------------------------------------------------------------------- hook() and TypedHook


async def test_hook_outside_a_context_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="must be called within a workflow context"):
        await hook("approval")
    with pytest.raises(RuntimeError, match="must be called within a workflow context"):
        await define_hook("approval", Approval)()


async def test_public_hook_under_mock_context() -> None:
    tokens: list[str] = []

    async def on_created(token: str) -> None:
        tokens.append(token)

    with MockContext(run_id="run_7", mock_hooks={"approval": {"ok": True}}) as ctx:
        assert await hook("approval", timeout="24h", on_created=on_created) == {"ok": True}
        assert await hook("other", timeout="1h") == {"hook": "other", "mock": True}
    assert tokens[0].startswith("run_7:") and "approval" in tokens[0]
    assert [h["timeout"] for h in ctx.hooks] == [86400, 3600]
    assert ctx.hook_names == ["approval", "other"]


def test_typed_hook_repr_and_define_hook() -> None:
    typed = define_hook("approval", Approval)
    assert isinstance(typed, TypedHook)
    assert (typed.name, typed.schema) == ("approval", Approval)
    assert repr(typed) == "TypedHook(name='approval', schema=Approval)"
    assert repr(TypedHook("x", Approval)) == "TypedHook(name='x', schema=Approval)"
    with pytest.raises(TypeError, match="pydantic model"):
        TypedHook("bad", dict)  # type: ignore[type-var]


async def test_typed_hook_validates_the_payload() -> None:
    typed = define_hook("approval", Approval)
    good = {"approval": {"approved": True, "reviewer": "ada"}}
    with MockContext(run_id="r", mock_hooks=good) as ctx:
        assert await typed(timeout="2h") == Approval(approved=True, reviewer="ada")
    assert ctx.hooks[0]["timeout"] == 7200

    bad = MockContext(mock_hooks={"approval": {"approved": "maybe"}})
    with bad, pytest.raises(ValidationError) as info:
        await typed()
    assert {e["loc"][0] for e in info.value.errors()} == {"approved", "reviewer"}
    # The default mock payload does not fit the model either.
    with MockContext(), pytest.raises(ValidationError):
        await typed()


# ---------------------------------------------------------------------- results and errors


def test_resume_result_fields() -> None:
    assert [f.name for f in dataclasses.fields(ResumeResult)] == ["run_id", "hook_id", "status"]
    result = ResumeResult("run_1", "hook_a_1")
    assert result.status == "resumed"
    assert result == ResumeResult("run_1", "hook_a_1", "resumed")


def test_hook_validation_error_names_the_problems() -> None:
    err = HookValidationError("approval", Approval, None, ["reviewer: Field required"])
    text = str(err)
    assert "approval" in text and "reviewer: Field required" in text
    assert "nothing was recorded" in text
    assert (err.hook_name, err.schema, err.errors) == (
        "approval",
        Approval,
        ["reviewer: Field required"],
    )
    assert isinstance(err, WorkflowError) and isinstance(err, ValueError)
    assert "boom" in str(HookValidationError("h", None, "boom"))


def test_hook_disposed_error() -> None:
    err = HookDisposedError("run_1:hook_a_1:s", "hook_a_1", "its run was cancelled")
    assert str(err) == "Hook hook_a_1 no longer accepts payloads: its run was cancelled"
    assert err.hook_id == "hook_a_1" and err.token == "run_1:hook_a_1:s"
    assert isinstance(err, HookNotFoundError)


def test_cancellation_error_defaults() -> None:
    err = CancellationError()
    assert str(err) == "Workflow was cancelled" and err.reason is None
    assert isinstance(err, WorkflowError)
    custom = CancellationError("stopped", reason="user")
    assert (str(custom), custom.message, custom.reason) == ("stopped", "stopped", "user")


# ---------------------------------------------------------------------- LocalContext (§8.1)


def contexts() -> list[LocalContext]:
    return [
        LocalContext(run_id="r", durable=False),
        LocalContext(run_id="r", storage=InMemoryStorageBackend(), durable=True),
    ]


@pytest.mark.parametrize("ctx", contexts(), ids=["transient", "durable"])
def test_local_context_request_and_check(ctx: LocalContext) -> None:
    assert ctx.is_cancellation_requested() is False and ctx.cancellation_blocked is False
    ctx.check_cancellation()  # no-op
    ctx.request_cancellation("user asked")
    assert ctx.is_cancellation_requested() is True
    assert ctx._cancellation_reason == "user asked" == ctx.cancellation_reason
    with pytest.raises(CancellationError) as info:
        ctx.check_cancellation()
    assert info.value.reason == "user asked"
    ctx._cancellation_blocked = True
    ctx.check_cancellation()
    ctx._cancellation_blocked = False
    with pytest.raises(CancellationError):
        ctx.check_cancellation()


@pytest.mark.parametrize("ctx", contexts(), ids=["transient", "durable"])
async def test_local_context_shield_nests_and_restores(ctx: LocalContext) -> None:
    async with shield():  # no context: nothing to do
        pass
    with ctx:
        ctx.request_cancellation("stop")
        async with shield():
            assert ctx.cancellation_blocked is True
            ctx.check_cancellation()
            async with shield():
                ctx.check_cancellation()
            assert ctx.cancellation_blocked is True
        assert ctx.cancellation_blocked is False
        with pytest.raises(CancellationError):
            ctx.check_cancellation()


@pytest.mark.parametrize("ctx", contexts(), ids=["transient", "durable"])
async def test_durable_calls_in_a_cancelled_local_context_raise_before_running(
    ctx: LocalContext,
) -> None:
    ran: list[int] = []

    @step(name="hook_api_never_runs")
    async def never_runs() -> None:
        ran.append(1)

    ctx.request_cancellation("stop")
    with ctx:
        with pytest.raises(CancellationError):
            await never_runs()
        with pytest.raises(CancellationError):
            await sleep(5)
    assert ran == []


def test_local_context_from_an_event_log_with_a_cancellation_request() -> None:
    log: list[Any] = [
        ev.create_workflow_started_event("r", "wf", "[]", "{}"),
        ev.create_cancellation_requested_event("r", reason="shutdown"),
    ]
    for i, event in enumerate(log):
        event.sequence = i
    ctx = LocalContext(run_id="r", durable=False, event_log=log)
    assert ctx.is_cancellation_requested() is True and ctx.cancellation_reason == "shutdown"
    with pytest.raises(CancellationError) as info:
        ctx.check_cancellation()
    assert info.value.reason == "shutdown"
    started_only = LocalContext(run_id="r", durable=False, event_log=log[:1])
    assert started_only.is_cancellation_requested() is False
