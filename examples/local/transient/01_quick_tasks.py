"""Transient workflows: steps run in-process, nothing is stored.

Run from the repository root:

    python examples/local/transient/01_quick_tasks.py

Without a configured storage (and without ``default_durable=True``), ``start()`` runs
the workflow transiently: the steps run right away in this event loop with their
retries, and no event log is written, so a crash loses the run. Use it for short
work that can simply be started again. ``start()`` returns the run id once the
workflow has finished; a transient result is not stored, so the workflow hands its
output on itself (here it prints it).
"""

import asyncio
import time

from pyworkflow import start, step, workflow


@step
async def thumbnail(image: str) -> str:
    await asyncio.sleep(0.2)  # pretend to resize
    return image.replace(".png", "_thumb.png")


@step
async def publish(thumbnails: list[str]) -> str:
    return f"published {len(thumbnails)} thumbnails"


@workflow(durable=False)  # transient even if default_durable=True is configured
async def make_gallery(images: list[str]) -> str:
    # Independent steps can run concurrently.
    thumbs = await asyncio.gather(*(thumbnail(image) for image in images))
    summary = await publish(list(thumbs))
    print(f"  thumbnails: {', '.join(thumbs)}")
    print(f"  {summary}")
    return summary


async def main() -> None:
    started = time.monotonic()
    run_id = await start(make_gallery, ["cat.png", "dog.png", "owl.png"])
    elapsed = time.monotonic() - started
    print(f"transient run {run_id} finished in {elapsed:.2f}s (3 steps of 0.2s in parallel)")


if __name__ == "__main__":
    asyncio.run(main())
