"""Workflows for the Celery hook and cancellation tests, run by real workers
(``PYWORKFLOW_DISCOVER`` includes ``tests.celery.hook_flows``).

Every name starts with ``celery_`` (the test process imports this module too, and its
registrations stay for the session). Step bodies log each run to
``$PYWORKFLOW_TEST_DIR/events.log`` with :func:`tests.celery.flows.note`, one line per
body run (``runs_of(kind, tag)`` reads them back), so "ran once" is counted across
processes. ``on_created`` runs in the workflow worker; it writes ``<pid> <token>`` to
``<tag>.token`` there, which is how a test gets the token.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel, Field

from pyworkflow import (
    CancellationError,
    HookExpiredError,
    define_hook,
    get_context,
    hook,
    shield,
    sleep,
    step,
    workflow,
)
from tests.celery.flows import note


def _dir() -> Path:
    return Path(os.environ.get("PYWORKFLOW_TEST_DIR", "."))


def token_file(tag: str) -> Path:
    return _dir() / f"{tag}.token"


def read_token(tag: str) -> tuple[int, str] | None:
    """``(pid of the process that ran on_created, token)``, once it was written."""
    path = token_file(tag)
    if not path.exists():
        return None
    pid, token = path.read_text().split()
    return int(pid), token


def keep_token(tag: str) -> Callable[[str], Awaitable[None]]:
    """An ``on_created`` callback that leaves the token where the test finds it."""

    async def keep(token: str) -> None:
        path = token_file(tag)
        partial = path.with_suffix(".partial")
        partial.write_text(f"{os.getpid()} {token}")
        os.replace(partial, path)  # the reader never sees half a token

    return keep


# ------------------------------------------------------------------ hooks


class Approval(BaseModel):
    approved: bool
    reviewer: str = Field(min_length=1)


approval = define_hook("celery_approval", Approval)


@step(name="celery_hooks_settle")
async def settle(tag: str, amount: int, reviewer: str) -> str:
    note("settle", tag, time.time())
    return f"{amount * 2} paid, approved by {reviewer} (step pid {os.getpid()})"


@workflow(name="celery_hooks_approval")
async def approval_flow(tag: str, amount: int) -> str:
    decision = await approval(timeout="1h", on_created=keep_token(tag))
    if not decision.approved:
        return f"rejected by {decision.reviewer}"
    return await settle(tag, amount, decision.reviewer)


@step(name="celery_hooks_escalate")
async def escalate(tag: str, why: str) -> str:
    note("escalate", tag, time.time())
    return f"escalated: {why}"


@workflow(name="celery_hooks_deadline")
async def deadline_flow(tag: str, timeout: str) -> str:
    try:
        answer = await hook("celery_deadline", timeout=timeout, on_created=keep_token(tag))
    except HookExpiredError as error:
        return await escalate(tag, str(error))
    return f"answered: {answer}"


# ------------------------------------------------------------------ cancellation


@step(name="celery_cancel_loop_step")
async def loop_step(tag: str, i: int, seconds: float) -> int:
    note("loop", f"{tag}:{i}", time.time())  # when the body began
    await asyncio.sleep(seconds)
    return i + 1


@step(name="celery_cancel_cleanup")
async def cleanup(tag: str, done: int, seconds: float) -> str:
    note("cleanup", tag, time.time())
    await asyncio.sleep(seconds)
    return f"cleaned up after {done} steps"


@workflow(name="celery_cancel_loop")
async def cancel_loop(tag: str, steps: int, seconds: float, cleanup_seconds: float = 0) -> int:
    done = 0
    try:
        for i in range(steps):
            done = await loop_step(tag, i, seconds)
    except CancellationError:
        async with shield():  # without it, cleanup() would raise CancellationError too
            await cleanup(tag, done, cleanup_seconds)
        raise
    return done


@step(name="celery_cancel_reserve")
async def reserve(tag: str) -> str:
    note("reserve", tag, time.time())
    return f"booking-{tag}"


@step(name="celery_cancel_release")
async def release(tag: str, booking: str) -> str:
    note("release", tag, time.time())
    return f"released {booking}"


@workflow(name="celery_cancel_sleeper")
async def cancel_sleeper(tag: str) -> str:
    booking = await reserve(tag)
    try:
        await sleep("1h")
    except CancellationError:
        async with shield():
            await release(tag, booking)  # the compensation
        raise
    return booking


@workflow(name="celery_cancel_hook")
async def cancel_hook(tag: str) -> object:
    return await hook("celery_cancel_wait", timeout="1h", on_created=keep_token(tag))


@step(name="celery_cancel_cooperative")
async def cooperative(tag: str, seconds: float) -> str:
    """Works in 50 ms chunks for ``seconds``, checking for cancellation between them."""
    started = time.time()
    (_dir() / f"{tag}.started").write_text(str(os.getpid()))
    ctx = get_context()
    try:
        while time.time() - started < seconds:
            ctx.check_cancellation()
            await asyncio.sleep(0.05)
    except CancellationError:
        note("stopped", tag, started, time.time())
        raise
    note("finished", tag, started, time.time())
    return "finished"


@workflow(name="celery_cancel_cooperative")
async def cooperative_flow(tag: str, seconds: float) -> str:
    return await cooperative(tag, seconds)


@step(name="celery_cancel_hang", timeout=3)
async def hang(tag: str) -> str:
    """Announces itself (pid in ``<tag>.started``) and works without ever polling for
    cancellation, until its worker is killed. (The timeout makes its watchdog short:
    4 s with the test clusters' ``PYWORKFLOW_TEST_REDISPATCH_MARGIN``.)"""
    note("hang", tag, time.time())
    (_dir() / f"{tag}.started").write_text(str(os.getpid()))
    await asyncio.sleep(30)
    return "done"


@workflow(name="celery_cancel_hang")
async def hang_flow(tag: str) -> str:
    booking = await reserve(tag)
    try:
        return await hang(tag)
    except CancellationError:
        async with shield():
            await release(tag, booking)
        raise
