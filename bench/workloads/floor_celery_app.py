"""W4's floor: a plain Celery app (``celery -A floor_celery_app worker``) whose "run" is
a chain of trivial tasks, on the same Redis as the engines.

Serialization is JSON, like ours. Delivery is ours' too: acknowledged after the task
ran, one message prefetched per process. Those two decide how many round trips to
Redis a task costs, and the floor should differ from the engine by the engine's own
work only (recording each step, replaying the run), not by a laxer delivery.
Nothing else is set: no task events, no result for the tasks of the middle of a chain
(only the last one's result is stored: the client reads its completion time there).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery
from celery.signals import worker_ready

QUEUE = "bench.floor"

app = Celery(
    "bench_floor",
    broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("BENCH_CELERY_BACKEND", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.add_one", ignore_result=True)
def add_one(x: int) -> int:
    return x + 1


@app.task(name="bench.finish")
def finish(x: int) -> list[float]:
    """The chain's last step: its result carries when the "run" completed."""
    return [x + 1, time.time()]


@worker_ready.connect(weak=False)
def _announce(**_: object) -> None:
    Path(f"bench-ready.{os.getpid()}").touch()  # the harness waits for it
