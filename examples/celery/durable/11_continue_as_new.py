"""Continue-as-new on Celery: a polling loop whose history stays small, one run after
the other on the workers.

The twin of ``examples/local/durable/11_continue_as_new.py`` (with fewer polls: here
each one is a step on a step worker). With Redis, the workers and Beat of
../README.md running, run from the repository root:

    python examples/celery/durable/11_continue_as_new.py

A workflow that loops forever (poll a feed, process what is new, repeat) records two
events per step, so its log would grow without end, and every activation replays it
from the top. Instead, this one polls 20 times and then calls
``continue_as_new(cursor, items_seen)``: the run ends CONTINUED_AS_NEW and the next
run of the *chain* starts with those arguments and an empty log. Only the arguments
carry over, so they hold all the state the loop needs.

On Celery the workflow worker that ends a run creates the next one (PENDING, with a
resume guard) and sends a resume for it; any workflow worker picks it up. If that
worker dies in between, a ``followup`` timer row finishes the hand-over. ``start()``
returns the first run's id; ``get_workflow_result(first_run_id, wait=True)``
follows the chain to the final result, and ``get_workflow_chain(run_id)`` lists
every run of the chain, oldest first, from any member.
"""

import asyncio
import itertools
import os
import time

from pyworkflow import (
    continue_as_new,
    get_storage,
    get_workflow_chain,
    get_workflow_events,
    get_workflow_result,
    start,
    step,
    workflow,
)
from pyworkflow.storage.config import config_to_storage

POLLS = 200  # iterations in all
POLLS_PER_RUN = 20  # iterations before the run continues as new


@step
async def poll_feed(cursor: int) -> dict:
    """Fetch what is new after ``cursor`` (here: a number of new items)."""
    return {"new": cursor % 7, "pid": os.getpid()}


@workflow
async def follow_feed(cursor: int, items_seen: int) -> dict:
    pids = set()
    for _ in range(POLLS_PER_RUN):
        polled = await poll_feed(cursor)
        items_seen += polled["new"]
        pids.add(polled["pid"])
        cursor += 1
        if cursor >= POLLS:
            return {"cursor": cursor, "items_seen": items_seen, "last_run_pids": sorted(pids)}
    # Everything the next run needs is in its arguments; its history starts empty.
    continue_as_new(cursor, items_seen)


async def main() -> None:
    # The storage the workers use (PYWORKFLOW_STORAGE_* or pyworkflow.config.yaml).
    storage = get_storage() or config_to_storage({})

    began = time.monotonic()
    first_run_id = await start(follow_feed, 0, 0, runtime="celery", storage=storage)
    result = await get_workflow_result(first_run_id, storage=storage, wait=True, timeout=120)
    elapsed = time.monotonic() - began

    chain = await get_workflow_chain(first_run_id, storage=storage)
    events_per_run = [len(await get_workflow_events(run.run_id, storage=storage)) for run in chain]
    from_the_middle = await get_workflow_chain(chain[len(chain) // 2].run_id, storage=storage)
    statuses = [run.status.value for run in chain]
    step_pids = result.pop("last_run_pids")

    print(f"{POLLS} polls, {POLLS_PER_RUN} per run, in {elapsed:.1f}s on the workers")
    print(f"runs in the chain: {len(chain)}")
    print(f"events per run: max {max(events_per_run)}, total {sum(events_per_run)}")
    print(f"(one run doing all {POLLS} polls would hold {2 * POLLS + 2} events)")
    print(f"statuses: {statuses.count('continued_as_new')} continued_as_new, then {statuses[-1]}")
    print(f"start() returned the first run: {first_run_id == chain[0].run_id}")
    print(f"second run continued from the first: {chain[1].continued_from_run_id == first_run_id}")
    print(
        "each run continued to the next: "
        f"{all(a.continued_to_run_id == b.run_id for a, b in itertools.pairwise(chain))}"
    )
    print(f"same chain read from its middle run: {from_the_middle == chain}")
    print(f"last run's arguments: {chain[-1].input_args}")
    print(f"the last run's polls ran on step processes {step_pids}")
    print(f"final result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
