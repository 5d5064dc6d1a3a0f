"""``resume_hook(token, payload)``: deliver an outside event to a waiting workflow.

The token must be the whole token the hook handed out; it resumes its hook once.
The payload is validated against the hook's model before anything is recorded, and
never goes through pickle.

Example:
    >>> parse_hook_token("run_abc:hook_approval_1:s3cr3t")
    ('run_abc', 'hook_approval_1:s3cr3t')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loguru import logger

from pyworkflow.config import get_config
from pyworkflow.engine import executor
from pyworkflow.engine.hook_delivery import deliver_payload
from pyworkflow.engine.hooks import HOOK_TOKEN_SEPARATOR, parse_hook_token
from pyworkflow.runtime.factory import get_runtime, runtime_name_here
from pyworkflow.storage.base import StorageBackend

__all__ = [
    "HOOK_TOKEN_SEPARATOR",
    "ResumeResult",
    "create_hook_token",
    "parse_hook_token",
    "resume_hook",
]


@dataclass
class ResumeResult:
    """What ``resume_hook`` did.

    Example:
        >>> ResumeResult("run_1", "hook_approval_1", "resumed").status
        'resumed'
    """

    run_id: str
    hook_id: str
    status: str = "resumed"


def create_hook_token(run_id: str, hook_id: str) -> str:
    """``"<run_id>:<hook_id>"`` (upstream's format; hooks created by the engine get
    tokens with a random secret appended, which this does not make).

    Example:
        >>> create_hook_token("run_1", "hook_x_1")
        'run_1:hook_x_1'
    """
    return f"{run_id}{HOOK_TOKEN_SEPARATOR}{hook_id}"


def _storage(storage: StorageBackend | None) -> StorageBackend:
    chosen = storage if storage is not None else get_config().storage
    if chosen is None:
        chosen = executor.embedded_storage_in_use()
    if chosen is None:
        raise RuntimeError(
            "No storage backend configured: pass storage=... to resume_hook() or call "
            "pyworkflow.configure(storage=...) with the storage the run lives in."
        )
    return chosen


async def resume_hook(
    token: str, payload: Any, *, storage: StorageBackend | None = None
) -> ResumeResult:
    """Deliver ``payload`` to the hook behind ``token`` and wake its run.

    Raises ``InvalidTokenError`` (malformed token), ``HookNotFoundError`` (no hook has
    this exact token), ``HookAlreadyReceivedError``, ``HookExpiredError`` or
    ``HookValidationError`` (the payload does not match the hook's model); in each
    case nothing is recorded. On the local runtime the run continues before this
    returns; on Celery a resume is sent to the workers.

    Example:
        >>> import asyncio
        >>> from pyworkflow import hook, workflow, start, get_workflow_result
        >>> from pyworkflow.storage.memory import InMemoryStorageBackend
        >>> tokens = []
        >>> @workflow(name="doctest_resume_hook")
        ... async def approval() -> bool:
        ...     async def keep(token: str) -> None:
        ...         tokens.append(token)
        ...     answer = await hook("approve", on_created=keep)
        ...     return answer["ok"]
        >>> async def main():
        ...     store = InMemoryStorageBackend()
        ...     run_id = await start(approval, durable=True, storage=store)
        ...     await resume_hook(tokens[0], {"ok": True}, storage=store)
        ...     return await get_workflow_result(run_id, storage=store)
        >>> asyncio.run(main())
        True
    """
    store = await executor.ensure_connected(_storage(storage))
    found = await deliver_payload(store, token, payload)
    try:
        await get_runtime(runtime_name_here()).schedule_resume(found.run_id, store)
    except Exception as error:
        # The payload is recorded and a resume guard is armed: the run continues anyway.
        logger.warning(
            "Resuming run {} after hook {} failed: {}", found.run_id, found.hook_id, error
        )
    return ResumeResult(found.run_id, found.hook_id, "resumed")
