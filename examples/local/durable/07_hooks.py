"""Hooks: a workflow waits for a person's decision, for as long as it takes.

Run from the repository root:

    python examples/local/durable/07_hooks.py

An expense report needs a manager's approval. The workflow calls a typed hook
(``define_hook`` with a pydantic model); the hook records itself with an unguessable
token and ``on_created`` hands that token to the manager (here: prints it and keeps
it in a dict, in real life: an email with a link). The run is then SUSPENDED and
nothing waits in memory. ``resume_hook(token, payload)`` delivers the decision:

1. a payload that does not match the model is rejected, nothing is recorded and
   the run keeps waiting;
2. a valid payload resumes the run, which completes before ``resume_hook`` returns;
3. the same token again is refused: a token resumes its hook once.

A second report gets a one-second deadline (``timeout="1s"``; "3d" in real life).
Nobody answers, so at the deadline the run wakes by itself and the hook call raises
``HookExpiredError`` in the workflow, which escalates the report.
"""

import asyncio
import tempfile
from pathlib import Path

from pydantic import BaseModel

from pyworkflow import (
    HookAlreadyReceivedError,
    HookExpiredError,
    HookNotFoundError,
    SQLiteStorageBackend,
    define_hook,
    get_workflow_result,
    get_workflow_run,
    resume_hook,
    start,
    step,
    workflow,
)
from pyworkflow.core.exceptions import HookValidationError
from pyworkflow.storage.schemas import HookStatus


class Decision(BaseModel):
    approved: bool
    reviewer: str
    comment: str = ""


manager_decision = define_hook("manager_decision", Decision)

# What on_created sent out, by expense id (a real app would email a link instead).
inbox: dict[str, str] = {}


@step
async def file_expense(expense_id: str, amount: int) -> str:
    return f"{expense_id} ({amount} EUR) filed"


@step
async def pay_out(expense_id: str, reviewer: str) -> str:
    return f"{expense_id} paid, approved by {reviewer}"


@step
async def escalate(expense_id: str) -> str:
    return f"{expense_id} escalated to the finance team"


@workflow
async def expense_approval(expense_id: str, amount: int, deadline: str = "3d") -> str:
    await file_expense(expense_id, amount)

    async def send_to_manager(token: str) -> None:
        # Runs once, when the hook is created (not again on replay).
        inbox[expense_id] = token
        run_id, hook_id, secret = token.split(":")
        print(f"    on_created: token for {expense_id} = {run_id}:{hook_id}:<{len(secret)} chars>")

    try:
        decision = await manager_decision(timeout=deadline, on_created=send_to_manager)
    except HookExpiredError:
        print(f"    workflow: nobody answered {expense_id} in time, escalating")
        return await escalate(expense_id)
    if not decision.approved:
        return f"{expense_id} rejected by {decision.reviewer}: {decision.comment}"
    return await pay_out(expense_id, decision.reviewer)


async def approved_by_a_person(storage: SQLiteStorageBackend) -> None:
    print("[1] an expense waiting for approval")
    run_id = await start(expense_approval, "E-1", 120, durable=True, storage=storage)
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[1] after start(): {run.status.value}")
    for h in await storage.list_hooks(run_id=run_id, status=HookStatus.PENDING):
        print(f"[1] pending hook: {h.name} ({h.hook_id}), expires {h.expires_at:%Y-%m-%d}")

    token = inbox["E-1"]

    # A payload that does not match Decision: rejected before anything is recorded.
    try:
        await resume_hook(token, {"approved": "sure"}, storage=storage)
    except HookValidationError as error:
        print(f"[1] bad payload rejected: {'; '.join(error.errors)}")
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[1] after the bad payload: {run.status.value}")

    # A token with one character changed finds nothing.
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    try:
        await resume_hook(forged, {"approved": True, "reviewer": "mallory"}, storage=storage)
    except HookNotFoundError:
        print("[1] forged token: HookNotFoundError")

    result = await resume_hook(token, {"approved": True, "reviewer": "grace"}, storage=storage)
    print(f"[1] resume_hook -> {result.status} ({result.hook_id})")
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[1] status: {run.status.value}")
    print(f"[1] result: {await get_workflow_result(run_id, storage=storage)!r}")

    try:
        await resume_hook(token, {"approved": False, "reviewer": "grace"}, storage=storage)
    except HookAlreadyReceivedError as error:
        print(f"[1] second resume: HookAlreadyReceivedError ({error})")


async def nobody_answers(storage: SQLiteStorageBackend) -> None:
    print("[2] an expense with a one-second deadline")
    run_id = await start(expense_approval, "E-2", 80, "1s", durable=True, storage=storage)
    run = await get_workflow_run(run_id, storage=storage)
    print(f"[2] after start(): {run.status.value}")

    # The local runtime's timer service wakes the run at the deadline.
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=10)
    print(f"[2] result: {result!r}")
    [expired] = await storage.list_hooks(run_id=run_id)
    print(f"[2] hook status: {expired.status.value}")

    try:
        await resume_hook(inbox["E-2"], {"approved": True, "reviewer": "late"}, storage=storage)
    except HookExpiredError:
        print("[2] a late answer: HookExpiredError")


async def main() -> None:
    storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "hooks.db"))
    await approved_by_a_person(storage)
    await nobody_answers(storage)


if __name__ == "__main__":
    asyncio.run(main())
