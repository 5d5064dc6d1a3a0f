"""Workflows the Celery tests run on real workers (``PYWORKFLOW_DISCOVER=tests.celery.flows``).

Every name starts with ``celery_``: the test process imports this module at collection,
so its registrations stay for the whole session and must not clash with other tests.

Side effects go to ``$PYWORKFLOW_TEST_DIR/events.log``, one line per step body run:
``<kind> <tag> <pid> <start> <end>`` (wall-clock seconds). Lines are appended with one
``write`` on an ``O_APPEND`` file, so processes never interleave them.

``PYWORKFLOW_TEST_REDISPATCH_MARGIN`` shortens the step watchdog (how long after its
``timeout`` a dispatched step counts as lost) so the crash tests finish in seconds.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pyworkflow import sleep, step, workflow
from pyworkflow.engine import dispatch

if os.environ.get("PYWORKFLOW_TEST_REDISPATCH_MARGIN"):
    dispatch.REDISPATCH_MARGIN_SECONDS = float(os.environ["PYWORKFLOW_TEST_REDISPATCH_MARGIN"])


def _dir() -> Path:
    return Path(os.environ.get("PYWORKFLOW_TEST_DIR", "."))


def note(kind: str, tag: str, start: float, end: float | None = None) -> None:
    """Append one side-effect line."""
    line = f"{kind} {tag} {os.getpid()} {start:.6f} {end if end is not None else start:.6f}\n"
    fd = os.open(_dir() / "events.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def runs_of(kind: str, tag: str) -> list[tuple[int, float, float]]:
    """``(pid, start, end)`` of each recorded body run of ``kind`` for ``tag``."""
    path = _dir() / "events.log"
    found = []
    for line in path.read_text().splitlines() if path.exists() else []:
        k, t, pid, start, end = line.split()
        if (k, t) == (kind, tag):
            found.append((int(pid), float(start), float(end)))
    return found


@step(name="celery_add_one")
async def add_one(tag: str, total: int) -> int:
    note("add_one", tag, time.time())
    return total + 1


@workflow(name="celery_five_steps")
async def five_steps(tag: str) -> int:
    total = 0
    for _ in range(5):
        total = await add_one(tag, total)
    return total


@step(name="celery_slow")
async def slow(tag: str, i: int, seconds: float) -> int:
    start = time.time()
    await asyncio.sleep(seconds)
    note("slow", tag, start, time.time())
    return i * i


@workflow(name="celery_fan_out")
async def fan_out(tag: str, seconds: float) -> list[int]:
    return list(await asyncio.gather(*(slow(tag, i, seconds) for i in range(4))))


@workflow(name="celery_where")
async def where(tag: str) -> int:
    # A workflow-body side effect, on purpose: it shows which process ran activations.
    note("activation", tag, time.time())
    return await add_one(tag, 0)


@workflow(name="celery_sleeper")
async def sleeper(tag: str, duration: str) -> int:
    await sleep(duration)
    return await add_one(tag, 41)


@step(name="celery_flaky", max_retries=2, retry_delay=1)
async def flaky(tag: str) -> str:
    note("flaky", tag, time.time())
    if len(runs_of("flaky", tag)) == 1:
        raise ConnectionError("first attempt fails")
    return "recovered"


@workflow(name="celery_flaky")
async def flaky_flow(tag: str) -> str:
    return await flaky(tag)


@step(name="celery_killable", timeout=3)
async def killable(tag: str) -> str:
    """The first run announces itself (pid in ``<tag>.started``) and hangs until killed."""
    note("killable", tag, time.time())
    if len(runs_of("killable", tag)) == 1:
        (_dir() / f"{tag}.started").write_text(str(os.getpid()))
        await asyncio.sleep(30)
    return "survived"


@workflow(name="celery_killable")
async def killable_flow(tag: str) -> str:
    return await killable(tag)


#: How long each step of the batch tests takes, so that some step is mid-body when a
#: worker is killed.
BATCH_STEP_SECONDS = 0.02


@step(name="celery_batch_step")
async def batch_step(tag: str, i: int, total: int) -> int:
    note("batch", f"{tag}:{i}", time.time())
    await asyncio.sleep(BATCH_STEP_SECONDS)
    return total + i


@workflow(name="celery_batch")
async def batch(tag: str, base: int) -> int:
    """Five steps in a row; the result is ``base + 0 + 1 + 2 + 3 + 4``."""
    total = base
    for i in range(5):
        total = await batch_step(tag, i, total)
    return total


@workflow(name="celery_hang_once")
async def hang_once(tag: str) -> int:
    """The first activation announces itself (pid in ``<tag>.hanging``) and blocks its
    workflow worker, as a CPU-bound activation would, until the worker is killed."""
    marker = _dir() / f"{tag}.hanging"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)
    return await batch_step(tag, 0, 1)


@step(name="celery_upgrade_a")
async def upgrade_a(tag: str) -> str:
    return "a"


@step(name="celery_upgrade_b")
async def upgrade_b(tag: str) -> str:
    return "b"


@workflow(name="celery_upgrade")
async def upgrade(tag: str, change: str) -> list[str]:
    """Stands for code deployed while the run sleeps: once ``<tag>.v2`` exists, the call
    before the sleep (``change="before"``) or after it (``"after"``) is another step."""
    v2 = (_dir() / f"{tag}.v2").exists()
    first = await (upgrade_b if v2 and change == "before" else upgrade_a)(tag)
    await sleep("2s")
    second = await (upgrade_b if v2 and change == "after" else upgrade_a)(tag)
    return [first, second]
