"""Child workflow patterns on Celery: fan-out/fan-in, fire-and-forget handles, cancel,
nesting.

The twin of ``examples/local/durable/10_child_workflow_patterns.py``. With Redis, the
workers and Beat of ../README.md running, run from the repository root:

    python examples/celery/durable/10_child_workflow_patterns.py

1. Fan-out/fan-in: ``asyncio.gather`` over 20 ``start_child_workflow`` calls. One
   activation of the parent records the 20 starts, creates the 20 child runs and
   sends a resume for each; the parent suspends. The children run on the workflow
   workers and their steps (0.3 s each) on the step workers, as many at once as
   there are step processes. ``gather`` returns their results in the order of the
   calls, when the last child's outcome has reached the parent.
2. Fire-and-forget: ``start_child_workflow(..., wait_for_completion=False)`` returns
   a ``ChildWorkflowHandle`` at once. The parent does other work, then awaits
   ``handle.result()``: inside the parent this wait is durable (the parent suspends,
   holding no worker, until the child has ended). A parent must not return while a
   child it needs is still running: when a parent ends, its unfinished children are
   cancelled.
3. ``handle.cancel(reason)`` cancels a child that would sleep for an hour; its
   ``result()`` then raises ``ChildWorkflowFailedError``. The child left running
   when its parent returns is cancelled by the parent close policy.
4. Nesting: a root run (depth 0) can have children, grandchildren and
   great-grandchildren (depth 3), no deeper: the depth-3 run's child call raises
   ``MaxNestingDepthError``.
"""

import asyncio
import os
import time

from pyworkflow import (
    ChildWorkflowFailedError,
    MaxNestingDepthError,
    get_storage,
    get_workflow_events,
    get_workflow_result,
    get_workflow_run,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.storage.config import config_to_storage

CHILDREN = 20
STEP_SECONDS = 0.3

# ----------------------------------------------------------------- 1. fan-out / fan-in


@step
async def resize(image: int) -> dict:
    began = time.time()  # wall-clock: the steps run in several processes
    await asyncio.sleep(STEP_SECONDS)  # the real work: download, resize, upload
    return {"image": image, "began": began, "ended": time.time(), "pid": os.getpid()}


@workflow
async def resize_image(image: int) -> dict:
    return await resize(image)


@workflow
async def resize_album(images: int) -> list[dict]:
    return await asyncio.gather(*(start_child_workflow(resize_image, i) for i in range(images)))


def most_at_once(results: list[dict]) -> int:
    edges = sorted([(r["began"], 1) for r in results] + [(r["ended"], -1) for r in results])
    most = running = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


async def fan_out(storage) -> None:
    print(f"[1] fan-out over {CHILDREN} children with asyncio.gather")
    began = time.monotonic()
    run_id = await start(resize_album, CHILDREN, runtime="celery", storage=storage)
    results = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    elapsed = time.monotonic() - began
    children = await storage.get_children(run_id)
    pids = sorted({r["pid"] for r in results})
    sequential = CHILDREN * STEP_SECONDS
    print(
        f"[1] {len(children)} child runs of {STEP_SECONDS}s each: {elapsed:.2f}s in all "
        f"({sequential:.1f}s one by one)"
    )
    print(
        f"[1] their steps ran on {len(pids)} step processes, "
        f"{most_at_once(results)} at most at once"
    )
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


async def fire_and_forget(storage) -> None:
    print("[2] fire-and-forget children with handles")
    run_id = await start(onboard, "ada", runtime="celery", storage=storage)
    deadline = time.monotonic() + 60
    while len(await storage.get_children(run_id)) < 3:  # the parent's first activation
        if time.monotonic() > deadline:
            raise TimeoutError("the parent never started its children: are workers running?")
        await asyncio.sleep(0.01)
    parent = await get_workflow_run(run_id, storage=storage)
    print(f"[2] all 3 children started; parent {parent.status.value}")
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    statuses = ", ".join(c.status.value for c in await storage.get_children(run_id))
    print(f"[2] children: {statuses}")
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
        await reminder.result()
    except ChildWorkflowFailedError as error:
        outcome = f"ChildWorkflowFailedError: {error.error}"
    # The manager's reminder still sleeps when the parent returns: the parent close
    # policy cancels it.
    return f"upgraded ({outcome})"


async def cancelling(storage) -> None:
    print("[3] cancel a child through its handle")
    run_id = await start(trial, "grace", runtime="celery", storage=storage)
    result = await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)
    print(f"[3] parent result: {result!r}")
    for child in await storage.get_children(run_id):
        deadline = time.monotonic() + 30
        while child.status.value != "cancelled" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the close policy's cancellation runs on a worker
            child = await get_workflow_run(child.run_id, storage=storage)
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


async def nesting(storage) -> None:
    print("[4] nesting: at most 3 levels below the root")
    run_id = await start(nest, 0, runtime="celery", storage=storage)
    print(f"[4] {await get_workflow_result(run_id, storage=storage, wait=True, timeout=60)}")
    run = await get_workflow_run(run_id, storage=storage)
    while run is not None:
        depth = await storage.get_nesting_depth(run.run_id)
        print(f"[4]     {'    ' * depth}{run.workflow_name}{run.input_args} depth={depth}")
        children = await storage.get_children(run.run_id)
        run = children[0] if children else None


async def main() -> None:
    # The storage the workers use (PYWORKFLOW_STORAGE_* or pyworkflow.config.yaml).
    storage = get_storage() or config_to_storage({})
    await fan_out(storage)
    await fire_and_forget(storage)
    await cancelling(storage)
    await nesting(storage)


if __name__ == "__main__":
    asyncio.run(main())
