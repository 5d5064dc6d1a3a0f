"""Child workflow patterns: fan-out/fan-in, fire-and-forget handles, cancel, nesting.

Run from the repository root:

    python examples/local/durable/10_child_workflow_patterns.py

1. Fan-out/fan-in: ``asyncio.gather`` over 20 ``start_child_workflow`` calls starts
   20 child runs that run concurrently (each takes 0.3 s; all of them take about
   as long as one). ``gather`` returns their results in the order of the calls.
2. Fire-and-forget: ``start_child_workflow(..., wait_for_completion=False)`` returns
   a ``ChildWorkflowHandle`` at once. The parent does other work, then awaits
   ``handle.result()``: inside the parent this wait is durable (the parent suspends
   until the child has ended). A parent must not return while a child it needs is
   still running: when a parent ends, its unfinished children are cancelled.
3. ``handle.cancel(reason)`` cancels a child that would sleep for an hour; its
   ``result()`` then raises ``ChildWorkflowFailedError``. The child left running
   when its parent returns is cancelled by the parent close policy.
4. Nesting: a root run (depth 0) can have children, grandchildren and
   great-grandchildren (depth 3), no deeper: the depth-3 run's child call raises
   ``MaxNestingDepthError``.
"""

import asyncio
import tempfile
import time
from pathlib import Path

from pyworkflow import (
    ChildWorkflowFailedError,
    MaxNestingDepthError,
    SQLiteStorageBackend,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)

# ----------------------------------------------------------------- 1. fan-out / fan-in


@step
async def resize(image: int) -> dict:
    began = time.monotonic()
    await asyncio.sleep(0.3)  # the real work: download, resize, upload
    return {"image": image, "began": began, "ended": time.monotonic()}


@workflow
async def resize_image(image: int) -> dict:
    return await resize(image)


@workflow
async def resize_album(images: int) -> list[dict]:
    return await asyncio.gather(*(start_child_workflow(resize_image, i) for i in range(images)))


async def fan_out(storage: SQLiteStorageBackend) -> None:
    print("[1] fan-out over 20 children with asyncio.gather")
    began = time.monotonic()
    run_id = await start(resize_album, 20, durable=True, storage=storage)
    results = await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)
    elapsed = time.monotonic() - began
    children = await storage.get_children(run_id)
    overlap = min(r["ended"] for r in results) > max(r["began"] for r in results)
    print(f"[1] {len(children)} child runs of 0.3s each: {elapsed:.1f}s in all (6.0s one by one)")
    print(f"[1] all 20 were running at the same moment: {overlap}")
    print(f"[1] results in call order: {[r['image'] for r in results]}")


# ----------------------------------------------------------------- 2. fire-and-forget


@step
async def send_mail(user: str, kind: str) -> str:
    await asyncio.sleep(0.2)
    return f"{kind} mail sent to {user}"


@workflow
async def notify(user: str, kind: str) -> str:
    return await send_mail(user, kind)


@step
async def create_account(user: str) -> str:
    return f"acct-{user}"


@workflow
async def onboard(user: str) -> dict:
    handles = [
        await start_child_workflow(notify, user, kind, wait_for_completion=False)
        for kind in ("welcome", "tips", "survey")
    ]
    account = await create_account(user)  # other work while the mails go out
    # Wait for each child before returning: a parent that ends cancels its
    # unfinished children. Inside the parent, result() suspends the parent durably.
    mails = [await handle.result() for handle in handles]
    return {"account": account, "mails": mails}


async def fire_and_forget(storage: SQLiteStorageBackend) -> None:
    print("[2] fire-and-forget children with handles")
    run_id = await start(onboard, "ada", durable=True, storage=storage)
    # start() returned when the parent suspended in handles[0].result().
    parent = await get_workflow_run(run_id, storage=storage)
    children = await storage.get_children(run_id)
    statuses = ", ".join(child.status.value for child in children)
    print(f"[2] after start(): parent {parent.status.value}, children: {statuses}")
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)
    print(f"[2] result: {result}")


# ----------------------------------------------------------------- 3. cancel


@workflow
async def remind_later(user: str) -> str:
    await sleep("1h")
    return f"reminded {user}"


@workflow
async def trial(user: str) -> str:
    reminder = await start_child_workflow(remind_later, user, wait_for_completion=False)
    await start_child_workflow(remind_later, f"{user}-manager", wait_for_completion=False)
    # Workflow code runs again on every replay; cancelling a run that has already
    # ended changes nothing (cancel() returns False), so this line is safe to repeat.
    await reminder.cancel("user upgraded")
    try:
        outcome = await reminder.result()
    except ChildWorkflowFailedError as error:
        outcome = f"ChildWorkflowFailedError: {error.error}"
    # The manager's reminder still sleeps when the parent returns: the parent close
    # policy cancels it.
    return f"upgraded ({outcome})"


async def cancelling(storage: SQLiteStorageBackend) -> None:
    print("[3] cancel a child through its handle")
    run_id = await start(trial, "grace", durable=True, storage=storage)
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)
    print(f"[3] parent result: {result!r}")
    for child in await storage.get_children(run_id):
        print(f"[3] child {child.workflow_name}{child.input_args}: {child.status.value}")
        events = await get_workflow_events(child.run_id, storage=storage)
        reason = next(e.data["reason"] for e in events if e.type.value == "cancellation.requested")
        print(f"[3]     reason: {reason!r}")


# ----------------------------------------------------------------- 4. nesting limit


@workflow
async def nest(level: int) -> str:
    try:
        below = await start_child_workflow(nest, level + 1)
    except MaxNestingDepthError as error:
        return f"level {level} stops: {type(error).__name__}: {error}"
    return below


async def nesting(storage: SQLiteStorageBackend) -> None:
    print("[4] nesting: at most 3 levels below the root")
    run_id = await start(nest, 0, durable=True, storage=storage)
    print(f"[4] {await get_workflow_result(run_id, storage=storage, wait=True, timeout=30)}")
    run = await get_workflow_run(run_id, storage=storage)
    while run is not None:
        depth = await storage.get_nesting_depth(run.run_id)
        print(f"[4]     {'    ' * depth}{run.workflow_name}{run.input_args} depth={depth}")
        children = await storage.get_children(run.run_id)
        run = children[0] if children else None


async def main() -> None:
    storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "patterns.db"))
    await fan_out(storage)
    await fire_and_forget(storage)
    await cancelling(storage)
    await nesting(storage)


if __name__ == "__main__":
    asyncio.run(main())
