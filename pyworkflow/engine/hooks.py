"""Durable hooks, the workflow side: wait for data from outside the run.

A ``hook()`` call takes the next position like any durable call. On replay it
returns the recorded payload, raises the recorded expiry or ``on_created`` failure,
or waits again. A new hook commits ``hook.created``, its hook row (token, expiry,
JSON schema) and an expiry timer in one transaction, then hands the token to
``on_created`` and suspends. The expiry timer wakes the run at the deadline; the
call then records ``hook.expired`` and raises :class:`HookExpiredError`. Received,
expired and disposed share one de-duplication key, so a racing ``resume_hook`` and
an expiry cannot both win.

Tokens are ``<run_id>:<hook_id>:<secret>``, the secret 192 random bits.

Example:
    >>> token = new_hook_token("run_1", "hook_approval_1")
    >>> split_token(token)[:2]
    ('run_1', 'hook_approval_1')
"""

from __future__ import annotations

import json
import secrets
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyworkflow.core.exceptions import HookExpiredError, InvalidTokenError, SuspensionSignal
from pyworkflow.engine import events as ev
from pyworkflow.engine.activation import Activation
from pyworkflow.engine.step_call import replay_failure
from pyworkflow.serialization.decoder import deserialize_untrusted
from pyworkflow.serialization.encoder import class_path, serialize
from pyworkflow.storage.base import HookUpdate
from pyworkflow.storage.schemas import Hook, HookStatus, Timer, make_timer_id

HOOK_TOKEN_SEPARATOR = ":"
_SECRET_BYTES = 24  # 192 bits from the OS generator

# Payload models seen in this process, by class path: the resuming side validates
# with the model itself when it can find it (see engine.hook_delivery).
_schemas: dict[str, type[Any]] = {}


def new_hook_token(run_id: str, hook_id: str) -> str:
    """A fresh, unguessable token for ``hook_id`` of ``run_id``."""
    return f"{run_id}:{hook_id}:{secrets.token_urlsafe(_SECRET_BYTES)}"


def parse_hook_token(token: str) -> tuple[str, str]:
    """Split on the first ``:`` into ``(run_id, hook part)``.

    Example:
        >>> parse_hook_token("run_abc:hook:with:colons")
        ('run_abc', 'hook:with:colons')
    """
    run_id, sep, rest = str(token).partition(HOOK_TOKEN_SEPARATOR)
    if not sep or not run_id or not rest:
        error = InvalidTokenError(str(token))
        error.args = (
            f"Invalid token format: {token!r}. Pass the whole token the hook handed to "
            "on_created ('<run_id>:<hook id>:<secret>').",
        )
        raise error
    return run_id, rest


def split_token(token: str) -> tuple[str, str, str]:
    """``(run_id, hook_id, secret)`` of a token; the secret is ``""`` for a token
    without one (such a token never matches a hook this engine created)."""
    run_id, rest = parse_hook_token(token)
    hook_id, sep, secret = rest.rpartition(HOOK_TOKEN_SEPARATOR)
    if not sep:
        return run_id, rest, ""
    return run_id, hook_id, secret


def register_schema(model: type[Any]) -> str:
    """Remember a payload model for validation in this process; returns its path."""
    path = class_path(model)
    _schemas[path] = model
    return path


def known_schema(path: str) -> type[Any] | None:
    """A payload model registered in this process under ``path``."""
    return _schemas.get(path)


def decode_payload(raw: Any) -> Any:
    """A recorded payload as the workflow sees it (outside data: no class tags)."""
    return deserialize_untrusted(raw) if isinstance(raw, str) else raw


@dataclass
class HookSpec:
    """What a ``hook()`` call asked for."""

    name: str
    timeout_seconds: float | None = None
    on_created: Callable[[str], Awaitable[None]] | None = None
    schema: type[Any] | None = None


async def durable_hook(act: Activation, spec: HookSpec) -> Any:
    """The durable ``hook()`` call: payload, expiry error, or suspension."""
    hook_id = f"hook_{spec.name}_{act.next_counter()}"
    position = act.begin_call("hook", spec.name, hook_id)
    state = act.state
    if _settled(act, hook_id):
        return _outcome(act, hook_id)
    act.check_cancellation()
    created = state.hooks_created.get(hook_id)
    if created is None:
        act.validate_event_limits()
        # Tracked like an inline step: if a sibling (asyncio.gather) suspends the run
        # meanwhile, the activation still waits for on_created to finish.
        done = act.track()
        try:
            created = await _create(act, spec, hook_id, position)
        finally:
            done.set_result(None)
        if _settled(act, hook_id):  # resumed or failed while on_created ran
            return _outcome(act, hook_id)
    expires_at = _parse(created.get("expires_at"))
    if expires_at is not None:
        if expires_at <= act.now():
            await _expire(act, hook_id)
            return _outcome(act, hook_id)
        # Re-arming in the suspending commit also resets a stale claim.
        act.buffer(timers_upsert=[Timer(act.run_id, "hook", hook_id, expires_at)])
    raise SuspensionSignal(f"hook:{hook_id}", resume_at=expires_at, hook_id=hook_id)


def _settled(act: Activation, hook_id: str) -> bool:
    s = act.state
    return (
        hook_id in s.hook_payloads_raw
        or hook_id in s.hooks_expired
        or (hook_id in s.hooks_disposed)
    )


def _outcome(act: Activation, hook_id: str) -> Any:
    """Return the payload, or raise the recorded expiry / on_created failure."""
    s = act.state
    if hook_id in s.hook_payloads_raw:
        return decode_payload(s.hook_payloads_raw[hook_id])
    if hook_id in s.hooks_expired:
        raise HookExpiredError(hook_id)
    raise replay_failure(s.hooks_disposed[hook_id])


async def _create(act: Activation, spec: HookSpec, hook_id: str, position: int) -> dict[str, Any]:
    now = act.now()
    token = new_hook_token(act.run_id, hook_id)
    timeout = spec.timeout_seconds
    expires_at = now + timedelta(seconds=timeout) if timeout else None
    event = ev.create_hook_created_event(
        act.run_id, hook_id, token=token, expires_at=expires_at, name=spec.name
    )
    event.data["position"] = position
    hook = Hook(
        hook_id=hook_id,
        run_id=act.run_id,
        token=token,
        created_at=now,
        expires_at=expires_at,
        name=spec.name,
    )
    if spec.schema is not None:
        hook.payload_schema = json.dumps(spec.schema.model_json_schema())
        hook.metadata = {"schema": register_schema(spec.schema)}
    timers = [Timer(act.run_id, "hook", hook_id, expires_at)] if expires_at else []
    await act.commit([event], hooks_create=[hook], timers_upsert=timers)
    if spec.on_created is not None:
        try:
            await spec.on_created(token)
        except Exception as error:
            await _dispose(act, hook_id, error)
            if hook_id not in act.state.hook_payloads_raw:
                raise
        # The callback may have handed the token on to something that answered at
        # once: see that payload now rather than suspend past it.
        await act.refresh()
    return event.data


async def _expire(act: Activation, hook_id: str) -> None:
    """Record the expiry now (not buffered): a payload racing in must win or lose
    before the workflow is told."""
    await act.commit(
        [ev.create_hook_expired_event(act.run_id, hook_id)],
        hook_updates=[HookUpdate(hook_id, HookStatus.EXPIRED)],
        timers_delete=[make_timer_id(act.run_id, "hook", hook_id)],
    )
    act.state.hooks_expired.add(hook_id)


async def _dispose(act: Activation, hook_id: str, error: Exception) -> None:
    """``on_created`` failed: the hook is withdrawn and the error recorded, so that
    every replay raises it at this call as the first pass did."""
    try:
        encoded: str | None = serialize(error, allow_pickle=False)
    except Exception:
        encoded = None
    data = {
        "hook_id": hook_id,
        "error": str(error),
        "error_type": type(error).__name__,
        "exception": encoded,
        "traceback": "".join(traceback.format_exception(error)),
    }
    await act.commit(
        [ev.Event(run_id=act.run_id, type=ev.EventType.HOOK_DISPOSED, data=data)],
        hook_updates=[HookUpdate(hook_id, HookStatus.DISPOSED)],
        timers_delete=[make_timer_id(act.run_id, "hook", hook_id)],
    )
    if hook_id not in act.state.hook_payloads_raw:
        act.state.hooks_disposed[hook_id] = data


def pending_hook_updates(act: Activation) -> list[HookUpdate]:
    """Hooks still waiting when the run ends: they are disposed with it."""
    s = act.state
    return [
        HookUpdate(hook_id, HookStatus.DISPOSED)
        for hook_id in s.hooks_created
        if hook_id not in s.hook_payloads_raw
        and hook_id not in s.hooks_expired
        and hook_id not in s.hooks_disposed
    ]


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
