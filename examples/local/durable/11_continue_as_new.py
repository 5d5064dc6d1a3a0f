"""Continue-as-new: a polling loop of 10,000 iterations whose history stays small.

Run from the repository root:

    python examples/local/durable/11_continue_as_new.py

A workflow that loops forever (poll a feed, process what is new, repeat) records two
events per step, so its log would grow without end: 10,000 polls would be 20,000+
events in one run, replayed from the top at every resume, and a run stops at the
event limit (50,000 by default). Instead, this one polls 100 times and then calls
``continue_as_new(cursor, total)``: the run ends CONTINUED_AS_NEW and the next run
of the *chain* starts with those arguments and an empty log. Only the arguments
carry over, so they hold all the state the loop needs.

``start()`` returns the first run's id. ``get_workflow_result(first_run_id)``
follows the chain to the final result; ``get_workflow_chain(run_id)`` lists every
run of the chain, oldest first, from any member. On the local runtime the chain
runs in the same ``start()`` call, one run after the other.
"""

import asyncio
import tempfile
import time
from pathlib import Path

from pyworkflow import (
    SQLiteStorageBackend,
    continue_as_new,
    get_workflow_chain,
    get_workflow_events,
    get_workflow_result,
    start,
    step,
    workflow,
)

POLLS = 10_000  # iterations in all
POLLS_PER_RUN = 100  # iterations before the run continues as new


@step
async def poll_feed(cursor: int) -> int:
    """Fetch what is new after ``cursor`` (here: a number of new items)."""
    return cursor % 7


@workflow
async def follow_feed(cursor: int, items_seen: int) -> dict:
    for _ in range(POLLS_PER_RUN):
        items_seen += await poll_feed(cursor)
        cursor += 1
        if cursor >= POLLS:
            return {"cursor": cursor, "items_seen": items_seen}
    # Everything the next run needs is in its arguments; its history starts empty.
    continue_as_new(cursor, items_seen)


async def main() -> None:
    storage = SQLiteStorageBackend(str(Path(tempfile.mkdtemp()) / "feed.db"))

    began = time.monotonic()
    first_run_id = await start(follow_feed, 0, 0, durable=True, storage=storage)
    elapsed = time.monotonic() - began

    result = await get_workflow_result(first_run_id, storage=storage)
    chain = await get_workflow_chain(first_run_id, storage=storage)
    events_per_run = [len(await get_workflow_events(run.run_id, storage=storage)) for run in chain]
    from_the_middle = await get_workflow_chain(chain[len(chain) // 2].run_id, storage=storage)

    print(f"{POLLS} polls, {POLLS_PER_RUN} per run, in {elapsed:.1f}s")
    print(f"runs in the chain: {len(chain)}")
    print(f"events per run: max {max(events_per_run)}, total {sum(events_per_run)}")
    print(f"(one run doing all {POLLS} polls would hold {2 * POLLS + 2} events)")
    print(f"statuses: first {chain[0].status.value}, last {chain[-1].status.value}")
    print(f"start() returned the first run: {first_run_id == chain[0].run_id}")
    print(f"second run continued from the first: {chain[1].continued_from_run_id == first_run_id}")
    print(f"same chain read from its middle run: {from_the_middle == chain}")
    print(f"last run's arguments: {chain[-1].input_args}")
    print(f"final result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
