"""Upstream's replay helper: fold a list of events into a ``LocalContext``.

The engine itself replays through :class:`~pyworkflow.engine.state.RunState` when it
builds an activation; this module keeps upstream's entry points for users' tests.

Example:
    >>> import asyncio
    >>> from pyworkflow.context.local import LocalContext
    >>> from pyworkflow.engine.events import create_step_completed_event
    >>> ctx = LocalContext(durable=False)
    >>> e = create_step_completed_event("local_run", "step_a", '{"x": 1}', "a")
    >>> e.sequence = 0
    >>> asyncio.run(replay_events(ctx, [e]))
    >>> ctx.step_results
    {'step_a': {'x': 1}}
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from loguru import logger

from pyworkflow.engine.events import Event, EventType
from pyworkflow.serialization.decoder import deserialize


class EventReplayer:
    """Applies recorded events to a context (``LocalContext`` or compatible)."""

    async def replay(self, ctx: Any, events: Iterable[Event]) -> None:
        """Apply ``events`` in sequence order; ``ctx.is_replaying`` is True meanwhile."""
        ordered = sorted(events, key=lambda e: e.sequence if e.sequence is not None else 0)
        ctx.is_replaying = True
        try:
            for event in ordered:
                await self._apply_event(ctx, event)
        finally:
            ctx.is_replaying = False

    async def _apply_event(self, ctx: Any, event: Event) -> None:
        data = event.data
        kind = event.type
        if kind is EventType.STEP_COMPLETED:
            ctx.cache_step_result(data["step_id"], deserialize(data.get("result", "null")))
        elif kind is EventType.HOOK_RECEIVED:
            # Upstream keeps the payload exactly as stored here (not decoded).
            ctx.cache_hook_result(data["hook_id"], data.get("payload"))
        elif kind is EventType.STEP_RETRYING:
            ctx.set_retry_state(
                data["step_id"],
                int(data.get("attempt", 2)),
                resume_at=_parse(data.get("resume_at")),
                max_retries=int(data.get("max_retries", 3)),
            )
        elif kind is EventType.WORKFLOW_INTERRUPTED:
            logger.info("Replaying interruption of run {}: {}", event.run_id, data.get("reason"))
        elif kind is EventType.CANCELLATION_REQUESTED:
            ctx.request_cancellation(data.get("reason"))
        else:
            state = getattr(ctx, "_state", None)
            if state is not None:
                state.apply(event)


def _parse(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def replay_events(ctx: Any, events: Iterable[Event]) -> None:
    """Replay ``events`` into ``ctx`` with an :class:`EventReplayer`."""
    await EventReplayer().replay(ctx, events)
