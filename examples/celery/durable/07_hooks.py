"""Hooks on Celery: a workflow waits for a person's decision, with no worker holding it.

The twin of ``examples/local/durable/07_hooks.py``. With Redis, the workers and Beat
of ../README.md running, run from the repository root:

    python examples/celery/durable/07_hooks.py

An expense report needs a manager's approval. The workflow calls a typed hook
(``define_hook`` with a pydantic model): a workflow worker records the hook with an
unguessable token and runs ``on_created``, which sends the token to the manager
(here: into an "inbox" list in the broker's Redis, which this script reads; in real
life an email with a link). The run is then SUSPENDED: no worker and no broker
message waits for the answer. ``resume_hook(token, payload)``, called from any
process with the shared storage, delivers the decision:

1. a payload that does not match the model is rejected, nothing is recorded and the
   run keeps waiting;
2. a token with one character changed finds nothing;
3. a valid payload is recorded and a resume is sent to the workers (this script
   calls ``configure(default_runtime="celery")`` for that); the run pays out on a
   step worker. Had the resume message been lost, the run's resume guard
   (``PYWORKFLOW_RESUME_GUARD_SECONDS``) would wake it anyway;
4. the same token again is refused: a token resumes its hook once.

A second report gets a two-second deadline (``timeout="2s"``; "3d" in real life).
Nobody answers: the hook's deadline is a timer row in the storage, Beat's tick wakes
the run at the deadline, and the hook call raises ``HookExpiredError`` in the
workflow, which escalates the report.
"""

import asyncio
import os
import time
from datetime import datetime

import redis
from pydantic import BaseModel

from pyworkflow import (
    HookAlreadyReceivedError,
    HookExpiredError,
    HookNotFoundError,
    configure,
    define_hook,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    resume_hook,
    start,
    step,
    workflow,
)
from pyworkflow.celery.app import resolve_broker_url
from pyworkflow.core.exceptions import HookValidationError
from pyworkflow.storage.config import config_to_storage
from pyworkflow.storage.schemas import HookStatus


class Decision(BaseModel):
    approved: bool
    reviewer: str
    comment: str = ""


manager_decision = define_hook("manager_decision", Decision)


def inbox(run_id: str) -> str:
    """The manager's inbox for one run: a Redis list every process reaches."""
    return f"pyworkflow-example-07:{run_id}"


@step
async def file_expense(expense_id: str, amount: int) -> str:
    return f"{expense_id} ({amount} EUR) filed"


@step
async def pay_out(expense_id: str, reviewer: str) -> str:
    return f"{expense_id} paid by step process {os.getpid()}, approved by {reviewer}"


@step
async def escalate(expense_id: str) -> str:
    return f"{expense_id} escalated to the finance team"


async def send_to_manager(token: str) -> None:
    """on_created: runs once, in the workflow worker, when the hook is created."""
    run_id = token.split(":")[0]
    with redis.Redis.from_url(resolve_broker_url()) as client:
        client.rpush(inbox(run_id), token)
        client.expire(inbox(run_id), 600)


@workflow
async def expense_approval(expense_id: str, amount: int, deadline: str = "3d") -> str:
    await file_expense(expense_id, amount)
    try:
        decision = await manager_decision(timeout=deadline, on_created=send_to_manager)
    except HookExpiredError:
        return await escalate(expense_id)
    if not decision.approved:
        return f"{expense_id} rejected by {decision.reviewer}: {decision.comment}"
    return await pay_out(expense_id, decision.reviewer)


async def token_from_inbox(run_id: str, timeout: float = 60.0) -> str:
    """What the manager received (polls the inbox the workflow worker writes to)."""
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(resolve_broker_url()) as client:
        while time.monotonic() < deadline:
            token = client.lindex(inbox(run_id), 0)
            if token is not None:
                return token.decode()
            await asyncio.sleep(0.02)
    raise TimeoutError(f"no token for run {run_id}: are the workers running?")


async def wait_for_status(run_id: str, storage, statuses: tuple[str, ...], timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = await get_workflow_run(run_id, storage=storage)
        if run is not None and run.status.value in statuses:
            return run
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {run_id} never reached {statuses}: are workers and Beat running?")


async def approved_by_a_person(storage) -> None:
    run_id = await start(expense_approval, "E-1", 120, runtime="celery", storage=storage)
    token = await token_from_inbox(run_id)
    _, hook_id, secret = token.split(":")
    print(f"[1] on_created sent the manager {run_id}:{hook_id}:<{len(secret)} chars>")
    run = await wait_for_status(run_id, storage, ("suspended",))
    (waiting,) = await storage.list_hooks(run_id=run_id, status=HookStatus.PENDING)
    print(f"[1] the run is {run.status.value}, hook {waiting.name} pending, no worker holds it")

    try:
        await resume_hook(token, {"approved": "sure"}, storage=storage)
    except HookValidationError as error:
        print(f"[1] bad payload rejected: {'; '.join(error.errors)}")
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[1] after the bad payload: {run.status.value}")

    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    try:
        await resume_hook(forged, {"approved": True, "reviewer": "mallory"}, storage=storage)
    except HookNotFoundError:
        print("[1] forged token: HookNotFoundError")

    sent = time.monotonic()
    result = await resume_hook(token, {"approved": True, "reviewer": "grace"}, storage=storage)
    print(f"[1] resume_hook -> {result.status} ({result.hook_id}); the workers take over")
    paid = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    print(f"[1] completed {time.monotonic() - sent:.2f}s later: {paid!r}")

    try:
        await resume_hook(token, {"approved": False, "reviewer": "grace"}, storage=storage)
    except HookAlreadyReceivedError as error:
        print(f"[1] second resume: HookAlreadyReceivedError ({error})")


async def nobody_answers(storage) -> None:
    run_id = await start(expense_approval, "E-2", 80, "2s", runtime="celery", storage=storage)
    token = await token_from_inbox(run_id)
    run = await wait_for_status(run_id, storage, ("suspended",))
    print(f"[2] a report with a 2s deadline: {run.status.value}")

    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    print(f"[2] result: {result!r}")
    events = {e.type.value: e for e in await get_workflow_events(run_id, storage=storage)}
    due = datetime.fromisoformat(events["hook.created"].data["expires_at"])
    late = (events["hook.expired"].timestamp - due).total_seconds()
    (expired,) = await storage.list_hooks(run_id=run_id)
    print(f"[2] hook {expired.status.value} {late * 1000:.0f} ms after its deadline")
    try:
        await resume_hook(token, {"approved": True, "reviewer": "late"}, storage=storage)
    except HookExpiredError:
        print("[2] a late answer: HookExpiredError")


async def main() -> None:
    # The storage the workers use (PYWORKFLOW_STORAGE_* or pyworkflow.config.yaml);
    # resume_hook sends its resume through the default runtime, so make it Celery.
    storage = get_storage() or config_to_storage({})
    configure(default_runtime="celery", storage=storage)
    await approved_by_a_person(storage)
    await nobody_answers(storage)


if __name__ == "__main__":
    asyncio.run(main())
