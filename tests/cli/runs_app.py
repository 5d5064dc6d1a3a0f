"""Workflows (and the scenarios that drive them) for the ``pyworkflow runs`` CLI tests.

The tests import this module as ``tests.cli.runs_app``; the CLI subprocesses import it
as ``runs_app`` (``--module runs_app`` with this directory on ``PYTHONPATH``), so that a
``runs cancel`` can run the workflow's code.

Example (shell)::

    PYTHONPATH=tests/cli pyworkflow --module runs_app runs cancel run_1a2b --wait
"""

from __future__ import annotations

from typing import Any

from pyworkflow import (
    FatalError,
    continue_as_new,
    hook,
    resume_hook,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.schemas import HookStatus, RunStatus
from tests.support import eventually

#: Failures left for ``runs_app_flaky`` (its first attempt fails, then it succeeds).
FAILURES_LEFT = {"flaky": 1}


@step(name="runs_app_double")
async def double(x: int) -> int:
    """Twice ``x``."""
    return 2 * x


@step(name="runs_app_flaky", max_retries=2, retry_delay=0.05)
async def flaky(x: int) -> int:
    """``x + 1``, after failing once."""
    if FAILURES_LEFT["flaky"] > 0:
        FAILURES_LEFT["flaky"] -= 1
        raise ValueError("first try fails")
    return x + 1


@workflow(name="runs_app_kid")
async def kid(x: int) -> int:
    """A child: one step."""
    return await double(x)


@workflow(name="runs_app_tour")
async def tour(x: int) -> dict[str, Any]:
    """Every kind of durable call: steps (one retried), a sleep, a hook and a child."""
    a = await double(x)
    b = await flaky(a)
    await sleep(0.2)
    approval = await hook("approval", timeout="1h")
    c = await start_child_workflow(kid, b)
    return {"a": a, "b": b, "c": c, "approval": approval}


@workflow(name="runs_app_waiter")
async def waiter() -> int:
    """Waits for the ``go`` hook's ``{"n": ...}`` payload, then doubles it."""
    payload = await hook("go", timeout="1h")
    return await double(int(payload["n"]))


@workflow(name="runs_app_napper")
async def napper() -> str:
    """Sleeps an hour: a run that stays SUSPENDED."""
    await sleep("1h")
    return "woke"


@step(name="runs_app_refuse")
async def refuse() -> None:
    """Always fails for good."""
    raise FatalError("card declined")


@workflow(name="runs_app_doomed")
async def doomed() -> None:
    """Fails at its only step."""
    await refuse()


@workflow(name="runs_app_loop")
async def loop(n: int) -> int:
    """Continues as new until ``n`` reaches 2: a chain of three runs."""
    if n < 2:
        continue_as_new(n + 1)
    return n


async def pending_hook_token(store: StorageBackend, run_id: str) -> str:
    """The token of the run's pending hook, once it exists."""
    hooks = await eventually(
        lambda: store.list_hooks(run_id=run_id, status=HookStatus.PENDING),
        message=f"{run_id} never waited on a hook",
    )
    return str(hooks[0].token)


async def run_tour(store: StorageBackend) -> str:
    """A completed ``runs_app_tour`` run (its sleep and retry fire in this event loop)."""
    FAILURES_LEFT["flaky"] = 1
    run_id = await start(tour, 3, durable=True, storage=store)
    token = await pending_hook_token(store, run_id)
    await resume_hook(token, {"ok": True}, storage=store)
    await ended(store, run_id)
    return run_id


async def ended(store: StorageBackend, run_id: str) -> RunStatus:
    """The run's status once it is terminal."""

    async def status() -> RunStatus | None:
        run = await store.get_run(run_id)
        terminal = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
        return run.status if run is not None and run.status in terminal else None

    found = await eventually(status, message=f"{run_id} never ended")
    return found
