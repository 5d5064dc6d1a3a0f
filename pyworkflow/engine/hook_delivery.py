"""Deliver a hook payload from outside: check the token, validate, record once.

The token is looked up by the run and hook ids it names and then compared with the
stored one in constant time, so a token with one character changed finds nothing.
The payload is validated against the hook's pydantic model (found in this process
or imported by its path) or, failing that, against the JSON schema stored with the
hook; a bad payload raises :class:`HookValidationError` and nothing is written.
``hook.received``, the hook row's new status and a resume guard for the run go in
one commit; the shared per-hook key makes a second delivery (or one racing the
expiry) fail with the matching error instead of recording twice. Payloads never go
through pickle, in either direction.

Example:
    >>> import asyncio
    >>> from pyworkflow.storage.memory import InMemoryStorageBackend
    >>> asyncio.run(deliver_payload(InMemoryStorageBackend(), "run_x:hook_a_1:zz", {}))
    Traceback (most recent call last):
    ...
    pyworkflow.core.exceptions.HookNotFoundError: Hook not found for token: run_x:hook_a_1:zz
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from datetime import UTC, datetime
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from pyworkflow.core.exceptions import (
    HookAlreadyReceivedError,
    HookDisposedError,
    HookExpiredError,
    HookNotFoundError,
    HookValidationError,
    SerializationError,
)
from pyworkflow.engine import events as ev
from pyworkflow.engine.dispatch import resume_guard
from pyworkflow.engine.hooks import known_schema, split_token
from pyworkflow.serialization.decoder import resolve_class
from pyworkflow.serialization.encoder import serialize
from pyworkflow.storage.base import (
    CommitBatch,
    DuplicateEventError,
    HookUpdate,
    RunEndedError,
    StorageBackend,
)
from pyworkflow.storage.schemas import (
    TERMINAL_STATUSES,
    Hook,
    HookStatus,
    WorkflowRun,
    make_timer_id,
)


async def find_hook(storage: StorageBackend, token: str) -> Hook:
    """The hook this exact token belongs to, else :class:`HookNotFoundError`."""
    run_id, hook_id, _ = split_token(token)
    try:
        str(token).encode()
    except UnicodeEncodeError:  # a lone surrogate: no stored token can match it
        raise HookNotFoundError(token) from None
    hook = await storage.get_hook(hook_id, run_id)
    if hook is None or not hmac.compare_digest(hook.token.encode(), str(token).encode()):
        raise HookNotFoundError(token)
    return hook


def check_open(hook: Hook, now: datetime) -> None:
    """Raise unless the hook still waits for its payload."""
    if hook.status is HookStatus.RECEIVED:
        raise HookAlreadyReceivedError(hook.hook_id)
    expires_at = hook.expires_at
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if hook.status is HookStatus.EXPIRED or (expires_at is not None and expires_at <= now):
        raise HookExpiredError(hook.hook_id)
    if hook.status is HookStatus.DISPOSED:
        raise HookDisposedError(
            hook.token, hook.hook_id, "it was withdrawn (its on_created callback failed)"
        )


def payload_model(hook: Hook) -> type[Any] | None:
    """The pydantic model the hook's payload must match, when this process has it."""
    path = (hook.metadata or {}).get("schema")
    if not isinstance(path, str):
        return None
    model = known_schema(path) or resolve_class(path)
    return model if model is not None and issubclass(model, BaseModel) else None


def encode_payload(hook: Hook, payload: Any) -> str:
    """Validate ``payload`` for ``hook`` and return the JSON text to record."""
    data = _plain(payload)
    name = hook.name or hook.hook_id
    model = payload_model(hook)
    if model is not None:
        try:
            data = model.model_validate(data).model_dump(mode="json")
        except ValidationError as error:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in error.errors()
            ]
            raise HookValidationError(name, model, error, problems) from None
    elif hook.payload_schema:
        _check_json_schema(name, hook.payload_schema, data)
    try:
        return serialize(data, allow_pickle=False)
    except SerializationError as error:
        raise SerializationError(
            f"Hook '{name}' payload is not JSON data ({error}); send dicts, lists, strings, "
            "numbers, booleans or None.",
            data_type=type(payload).__name__,
        ) from None


def _plain(payload: Any) -> Any:
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        return dataclasses.asdict(payload)
    return payload


def _check_json_schema(name: str, schema_text: str, data: Any) -> None:
    """Validate against the stored JSON schema (the model is not importable here)."""
    import jsonschema  # only needed in processes without the workflow's code

    schema = json.loads(schema_text)
    validator = jsonschema.Draft202012Validator(schema)
    failures = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if failures:
        problems = [
            f"{'.'.join(map(str, f.absolute_path)) or '(root)'}: {f.message}" for f in failures
        ]
        raise HookValidationError(name, schema, failures[0], problems)


async def _explain_ended(
    storage: StorageBackend, hook: Hook, run: WorkflowRun | None, moment: datetime
) -> NoReturn:
    """The run has ended: say why this hook is closed. Re-read first: another delivery
    (or the expiry) may have settled the hook, and then ended the run, meanwhile."""
    fresh = await storage.get_hook(hook.hook_id, hook.run_id) or hook
    if fresh.status is HookStatus.RECEIVED:
        raise HookAlreadyReceivedError(hook.hook_id)
    if fresh.status is HookStatus.EXPIRED:
        raise HookExpiredError(hook.hook_id)
    status = run.status.value if run is not None else "deleted"
    raise HookDisposedError(hook.token, hook.hook_id, f"its run has ended ({status})")


async def deliver_payload(
    storage: StorageBackend, token: str, payload: Any, *, now: datetime | None = None
) -> Hook:
    """Record ``payload`` for the hook behind ``token``, once. Returns the hook.

    Raises ``InvalidTokenError``, ``HookNotFoundError``, ``HookAlreadyReceivedError``,
    ``HookExpiredError``, ``HookDisposedError`` or ``HookValidationError``; on any of
    them nothing was written.
    """
    moment = now or datetime.now(UTC)
    hook = await find_hook(storage, token)
    if hook.status in (HookStatus.PENDING, HookStatus.DISPOSED):
        run = await storage.get_run(hook.run_id)
        if run is None or run.status in TERMINAL_STATUSES:
            await _explain_ended(storage, hook, run, moment)
    check_open(hook, moment)
    raw = encode_payload(hook, payload)
    batch = CommitBatch(
        run_id=hook.run_id,
        events=[ev.create_hook_received_event(hook.run_id, hook.hook_id, raw)],
        hook_updates=[HookUpdate(hook.hook_id, HookStatus.RECEIVED, raw)],
        timers_delete=[make_timer_id(hook.run_id, "hook", hook.hook_id)],
        # If the message that resumes the run is lost, the guard still wakes it.
        timers_upsert=[resume_guard(hook.run_id, moment)],
        require_open=True,
    )
    try:
        await storage.commit(batch)
    except RunEndedError:
        await _explain_ended(storage, hook, await storage.get_run(hook.run_id), moment)
    except DuplicateEventError:
        # Someone else settled the hook first (a second delivery, or the expiry).
        settled = await storage.get_hook(hook.hook_id, hook.run_id)
        check_open(settled or hook, moment)
        raise HookAlreadyReceivedError(hook.hook_id) from None
    return hook
