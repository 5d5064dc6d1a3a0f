"""Sleeping in a transient workflow: an ordinary in-process wait.

Run from the repository root:

    python examples/local/transient/03_sleep.py

In a transient run ``sleep()`` is ``asyncio.sleep``: the run stays in memory while it
waits and other coroutines keep running. It accepts the same forms as in a durable
run: duration strings ("30s", compound "1h30m"), numbers of seconds (fractions
kept), a ``timedelta`` or a future ``datetime``; it never wakes early. For waits
that must survive a restart, use a durable run (examples/local/durable/04).
"""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from pyworkflow import sleep, start, workflow


async def timed_sleep(label: str, duration: float | str | timedelta | datetime) -> None:
    started = time.monotonic()
    await sleep(duration)
    print(f"  sleep({label}) took {time.monotonic() - started:.3f}s")


@workflow
async def show_sleep_forms() -> None:
    await timed_sleep("0.25", 0.25)
    await timed_sleep("'1s'", "1s")
    await timed_sleep("timedelta(milliseconds=300)", timedelta(milliseconds=300))
    await timed_sleep("now + 0.2s", datetime.now(UTC) + timedelta(seconds=0.2))


@workflow
async def countdown(name: str, seconds: float) -> None:
    await sleep(seconds)
    print(f"  {name} woke after {seconds}s")


async def main() -> None:
    print("one duration form after another:")
    await start(show_sleep_forms)

    print("three transient runs sleeping at the same time:")
    started = time.monotonic()
    await asyncio.gather(
        start(countdown, "tea", 0.5),
        start(countdown, "egg", 0.3),
        start(countdown, "toast", 0.4),
    )
    print(f"  all done in {time.monotonic() - started:.2f}s")


if __name__ == "__main__":
    asyncio.run(main())
