"""Workloads of the Celery chaos scenarios (``PYWORKFLOW_DISCOVER=tests.chaos.celery_app``).

Workers, Beat and the process that injects the faults all import this module, so every
name starts with ``chaos_celery_``. A run of :func:`mixed` does what the issue asks of a
run under fault: several steps in a row, a short durable sleep, a step that fails once
and is retried from a durable timer, and two gathered steps.

Side-effect counters use the harness's format (tests/chaos/harness.py): each step body
appends ``enter <key> <pid> <nonce>`` when it begins and ``leave <key> <pid> <nonce>``
when it is done to ``$PYWORKFLOW_TEST_DIR/effects.log`` (one ``write`` on an
``O_APPEND`` file: processes never interleave), with ``<key>`` = ``<run_id>:<step_id>``,
and returns the nonce in its result, so the recorded ``step.completed`` names the
execution that won.

Example::

    log = EffectLog(workdir / "effects.log").refresh()
    [ex.pid for ex in log.executions.values() if ex.key == key]   # who ran that step
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyworkflow import get_context, sleep, step, workflow
from pyworkflow.core.step import _generate_step_id
from pyworkflow.storage.base import StorageBackend
from tests.chaos.effects import Execution, add_effect_line

WORK = "chaos_celery_work"
FLAKY = "chaos_celery_flaky"


def _dir() -> Path:
    return Path(os.environ.get("PYWORKFLOW_TEST_DIR", "."))


def _mark(marker: str, key: str, nonce: str) -> None:
    # No fsync: only processes die here, never the machine, and the page cache keeps
    # what a killed process wrote.
    fd = os.open(_dir() / "effects.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{marker} {key} {os.getpid()} {nonce}\n".encode())
    finally:
        os.close(fd)


async def _body(name: str, args: tuple[Any, ...], seconds: float) -> dict[str, Any]:
    key = f"{get_context().run_id}:{_generate_step_id(name, args, {})}"
    nonce = uuid.uuid4().hex[:12]
    _mark("enter", key, nonce)
    await asyncio.sleep(seconds)
    _mark("leave", key, nonce)
    return {"nonce": nonce, "value": args[1]}


@step(name=WORK)
async def work(tag: str, index: int, seconds: float) -> dict[str, Any]:
    """A body of ``seconds``; its value is ``index``."""
    return await _body(WORK, (tag, index, seconds), seconds)


@step(name=FLAKY, max_retries=3, retry_delay=1)
async def flaky(tag: str, index: int) -> dict[str, Any]:
    """The first attempt of each call fails before any side effect; the retry (from a
    durable timer, a second later) succeeds."""
    flag = _dir() / "flaky" / f"{get_context().run_id}-{index}"
    flag.parent.mkdir(exist_ok=True)
    try:  # O_EXCL: exactly one attempt is "the first", across processes
        os.close(os.open(flag, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return await _body(FLAKY, (tag, index), 0.01)
    raise ConnectionError(f"{tag}: first attempt of flaky step {index} fails on purpose")


@workflow(name="chaos_celery_mixed")
async def mixed(tag: str, steps: int, seconds: float, pause: float) -> int:
    """``steps`` steps, ``sleep(pause)``, a retried step, two gathered steps."""
    total = 0
    for i in range(steps):
        total += int((await work(tag, i, seconds))["value"])
    await sleep(pause)
    total += int((await flaky(tag, steps))["value"])
    pair = await asyncio.gather(work(tag, steps + 1, seconds), work(tag, steps + 2, seconds))
    return total + sum(int(p["value"]) for p in pair)


def mixed_result(steps: int) -> str:
    """What :func:`mixed` returns for ``steps``, serialized as storage keeps it."""
    return str(sum(range(steps)) + steps + (steps + 1) + (steps + 2))


@workflow(name="chaos_celery_slot")
async def slot(tag: str) -> int:
    """What a schedule starts: one step."""
    return int((await work(tag, 0, 0.02))["value"])


@dataclass
class EffectLog:
    """The executions in ``effects.log``, read incrementally (the file only grows)."""

    path: Path
    executions: dict[str, Execution] = field(default_factory=dict)  # by nonce
    #: Nonces in the order their ``enter`` or ``leave`` was read.
    order: list[tuple[str, str]] = field(default_factory=list)
    _offset: int = 0

    def refresh(self) -> EffectLog:
        """Read the lines appended since the last call (a partial last line waits)."""
        if not self.path.exists():
            return self
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].decode().splitlines():
            read = add_effect_line(self.executions, line)
            if read is not None:
                self.order.append(read)
        return self

    def of_runs(self, run_ids: set[str]) -> list[Execution]:
        """The executions of the steps of these runs."""
        return [e for e in self.executions.values() if e.key.split(":", 1)[0] in run_ids]


async def redispatches(storage: StorageBackend, run_id: str) -> Counter[str]:
    """Per ``<run_id>:<step_id>``: how often an attempt was sent again by its watchdog
    (``step.started`` with ``dispatch`` > 1)."""
    again: Counter[str] = Counter()
    for event in await storage.get_events(run_id, ["step.started"]):
        if int(event.data.get("dispatch") or 1) > 1:
            again[f"{run_id}:{event.data.get('step_id')}"] += 1
    return again
