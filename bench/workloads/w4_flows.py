"""W4's workflows, imported by the Celery workers (``PYWORKFLOW_DISCOVER=w4_flows``) and
by the client that starts the runs. One text for both engines: both export ``step``,
``workflow`` and ``sleep`` from ``pyworkflow`` and accept the called decorator forms.

Importing it also prepares a worker process for a benchmark:

* loguru keeps WARNING and above only: upstream logs every task at INFO and ours at
  its ``PYWORKFLOW_LOG_LEVEL``; neither should pay for writing a log file per step
  (the same rule as the local workloads, see ``wl_common.engine``).
* ``worker_ready`` writes ``bench-ready.<pid>`` into the working directory, which the
  harness waits for (a file: the engines redirect and filter output each their own
  way, upstream 0.4 through loguru), and silences loguru again (upstream 0.4 sets its
  INFO handler up anew when the worker starts).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from celery.signals import worker_ready
from loguru import logger

from pyworkflow import sleep, step, workflow


def quiet() -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


quiet()


@worker_ready.connect(weak=False)
def _announce(**_: object) -> None:
    quiet()
    Path(f"bench-ready.{os.getpid()}").touch()


@step()
async def w4_add_one(x: int) -> int:
    return x + 1


@workflow(name="bench_w4_chain")
async def chain(x: int, steps: int) -> int:
    for _ in range(steps):
        x = await w4_add_one(x)
    return x


@workflow(name="bench_w4_nap")
async def nap(duration: str) -> str:
    await sleep(duration)
    return "woke"
