"""``shield()``: keep cleanup code from being interrupted by cancellation.

Inside the block, durable calls do not raise ``CancellationError``; the request
stays pending and takes effect after the block.

Example:
    >>> from pyworkflow import shield
    >>> async def cleanup():
    ...     async with shield():
    ...         pass  # release resources even if the run was cancelled
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pyworkflow.context.base import _current


@asynccontextmanager
async def shield() -> AsyncIterator[None]:
    """Block cancellation inside the ``async with``; nested shields work.

    Example:
        >>> import asyncio
        >>> from pyworkflow.context.local import LocalContext
        >>> async def cleanup():
        ...     with LocalContext(durable=False) as ctx:
        ...         async with shield():
        ...             return ctx.cancellation_blocked
        >>> asyncio.run(cleanup())
        True
    """
    ctx = _current.get()
    if ctx is None:
        yield
        return
    previous = bool(getattr(ctx, "_cancellation_blocked", False))
    ctx._cancellation_blocked = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ctx._cancellation_blocked = previous  # type: ignore[attr-defined]
