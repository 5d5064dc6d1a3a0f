"""Retries in a transient workflow: the step is retried in-process.

Run from the repository root:

    python examples/local/transient/02_retries.py

Transient runs keep the step's ``max_retries``/``retry_delay`` policy, but the wait
between attempts is an ``asyncio.sleep`` in this process (nothing is recorded).
When the attempts run out, the step's original exception reaches the workflow, and
``start()`` re-raises it if the workflow does not handle it. ``FatalError`` is never
retried.
"""

import asyncio
import itertools
import time

from pyworkflow import FatalError, start, step, workflow

attempt_times: list[float] = []


@step(max_retries=3, retry_delay=[0.2, 0.4])  # 0.2 s before retry 1, then 0.4 s
async def fetch_rates(fail_times: int) -> dict:
    attempt_times.append(time.monotonic())
    if len(attempt_times) <= fail_times:
        raise ConnectionError(f"rates service down (attempt {len(attempt_times)})")
    return {"EUR": 1.0, "USD": 1.08}


@step
async def parse_rates(raw: str) -> dict:
    raise FatalError(f"unparseable rates: {raw!r}")


@workflow
async def update_rates(fail_times: int) -> None:
    rates = await fetch_rates(fail_times)
    print(f"  got {rates} after {len(attempt_times)} attempts")


@workflow
async def import_rates(raw: str) -> None:
    await parse_rates(raw)


async def main() -> None:
    print("a step that fails twice:")
    await start(update_rates, 2)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempt_times)]
    print(f"  waits between attempts: {', '.join(f'{gap:.2f}s' for gap in gaps)}")

    print("a step that always fails (max_retries=3, so 4 attempts):")
    attempt_times.clear()
    try:
        await start(update_rates, 99)
    except ConnectionError as error:
        print(f"  gave up after {len(attempt_times)} attempts: {error}")

    print("a FatalError:")
    try:
        await start(import_rates, "<html>")
    except FatalError as error:
        print(f"  not retried: {error}")


if __name__ == "__main__":
    asyncio.run(main())
