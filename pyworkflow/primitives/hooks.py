"""``hook()``: wait inside a workflow for data from outside (an approval, a webhook).

In a durable run the call records the hook with an unguessable token, hands the
token to ``on_created`` (send it in an email, a chat message, a webhook URL) and
suspends: nothing is held while it waits. ``resume_hook(token, payload)`` wakes the
run and the call returns the payload. With ``timeout`` the run is woken at the
deadline and the call raises ``HookExpiredError``.

Example:
    >>> from pyworkflow import hook, workflow
    >>> @workflow
    ... async def expense(amount: int) -> str:
    ...     async def notify(token: str) -> None:
    ...         print("approve with", token)
    ...     decision = await hook("approval", timeout="24h", on_created=notify)
    ...     return "paid" if decision["approved"] else "rejected"
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pyworkflow.context.base import _current

if TYPE_CHECKING:
    from pydantic import BaseModel


async def hook(
    name: str,
    *,
    timeout: str | int | float | None = None,
    on_created: Callable[[str], Awaitable[None]] | None = None,
    payload_schema: type[BaseModel] | None = None,
) -> Any:
    """Wait for an outside event named ``name`` and return its payload.

    ``timeout`` (seconds or a duration such as ``"24h"``) sets a deadline enforced
    by a timer. ``on_created(token)`` runs once, when the hook is first created.
    ``payload_schema`` (a pydantic model) makes ``resume_hook`` reject payloads that
    do not match it, before anything is recorded.

    Example:
        >>> import asyncio
        >>> from pyworkflow.context.mock import MockContext
        >>> async def main():
        ...     with MockContext(mock_hooks={"approval": {"approved": True}}):
        ...         return await hook("approval", timeout="1h")
        >>> asyncio.run(main())
        {'approved': True}
    """
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError(
            "hook() must be called within a workflow context: call it from a function "
            "decorated with @workflow that was started with start()."
        )
    return await ctx.hook(
        name, timeout=timeout, on_created=on_created, payload_schema=payload_schema
    )
