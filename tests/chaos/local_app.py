"""The workload of the local chaos scenarios, run as separate processes.

Usage: ``python -m tests.chaos.local_app COMMAND STORAGE ...`` where STORAGE is
``sqlite:PATH`` or ``file:DIR`` and COMMAND is one of

* ``start N PREFIX [SLEEP]``: start runs ``PREFIX-0 .. PREFIX-N-1`` (idempotency keys,
  so a restarted starter skips the ones that exist), each driven inline until it
  suspends;
* ``worker [SECONDS]``: run the timer service (sleeps, retries, stale runs) for a
  while, or until killed;
* ``resume GO_FILE RUN_ID...``: wait for GO_FILE, then resume every run at once;
* ``hooks GO_FILE TOKEN...``: wait for GO_FILE, then deliver a payload to each hook.

Every step body appends ``enter|leave <key> <pid> <nonce> <unix time>`` lines
to ``$CHAOS_DIR/effects.log`` (``O_APPEND``, fsynced), with ``<key>`` =
``<run_id>:<step_id>``, and returns the nonce in its result: the recorded
``step.completed`` then says which execution won (see ``harness.side_effects``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

from pyworkflow import (
    HookExpiredError,
    RetryableError,
    WorkflowAlreadyRunningError,
    get_context,
    hook,
    resume,
    resume_hook,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.core.step import _generate_step_id
from pyworkflow.runtime import timer_service
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend

EFFECTS = "effects.log"


def effects_path() -> Path:
    return Path(os.environ["CHAOS_DIR"]) / EFFECTS


def record(marker: str, key: str, nonce: str) -> None:
    """Append one marker line durably: it must survive the SIGKILL that follows."""
    line = f"{marker} {key} {os.getpid()} {nonce} {time.time():.6f}\n".encode()
    fd = os.open(effects_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


async def body(name: str, run_id: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """The side effect of one step call, with a pause a kill can land in."""
    key = f"{run_id}:{_generate_step_id(name, args, {})}"
    nonce = uuid.uuid4().hex[:12]
    record("enter", key, nonce)
    await asyncio.sleep(random.uniform(0.005, 0.04))
    record("leave", key, nonce)
    return {"nonce": nonce, "value": 1}


@step(name="chaos_work")
async def work(run_id: str, index: int) -> dict[str, Any]:
    return await body("chaos_work", run_id, (run_id, index))


@step(name="chaos_flaky", max_retries=5)
async def flaky(run_id: str, index: int) -> dict[str, Any]:
    # The first attempt fails before any side effect (a marker file says it did),
    # so the retry path — step.failed, a durable retry timer — is always taken.
    marker = Path(os.environ["CHAOS_DIR"]) / "flaky" / f"{run_id}-{index}"
    if not marker.exists():
        marker.parent.mkdir(exist_ok=True)
        marker.touch()
        raise RetryableError("first attempt fails", retry_after=1)
    return await body("chaos_flaky", run_id, (run_id, index))


@workflow(name="chaos_local")
async def chaos_local(steps: int = 4, nap: float = 0.5, wait_hook: float = 0.0) -> int:
    """``steps`` steps around a sleep and a retried step; optionally a hook with a
    ``wait_hook``-second timeout (expired: counts 0, received: counts 1)."""
    run_id = get_context().run_id
    total = 0
    for i in range(steps // 2):
        total += int((await work(run_id, i))["value"])
    await sleep(nap)
    total += int((await flaky(run_id, 0))["value"])
    for i in range(steps // 2, steps):
        total += int((await work(run_id, i))["value"])
    if wait_hook:
        try:
            await hook("chaos_approval", timeout=wait_hook)
            total += 1
        except HookExpiredError:  # the deadline won the race
            pass
    return total


def open_storage(spec: str) -> StorageBackend:
    """``sqlite:PATH``, ``file:DIR``, ``slowsqlite:PATH`` (1-30 ms added to every call)
    or ``sqlitecap:PAGES:PATH`` (the database may not grow past PAGES pages: a full
    disk where no small filesystem can be mounted)."""
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return SQLiteStorageBackend(where)
    if kind == "file":
        return FileStorageBackend(where)
    if kind == "slowsqlite":
        from tests.chaos.harness import slow_storage_class

        return cast(StorageBackend, slow_storage_class(SQLiteStorageBackend)(where))
    if kind == "sqlitecap":
        pages, _, path = where.partition(":")
        return CappedSQLite(path, int(pages))
    raise SystemExit(f"unknown storage {spec!r}")


class CappedSQLite(SQLiteStorageBackend):
    """SQLite whose writer connection may not grow the file past ``max_pages`` pages."""

    def __init__(self, path: str, max_pages: int) -> None:
        super().__init__(path)
        self.max_pages = max_pages

    async def _open(self, read_only: bool) -> Any:
        db = await super()._open(read_only)
        if not read_only:
            await db.execute(f"PRAGMA max_page_count = {self.max_pages}")
        return db


def tune(service: Any) -> None:
    """Look for due timers and dead activations often: the scenarios are short.

    Claims last 3 s instead of 30: a process killed right after claiming timers (or
    stopped half-way through a claim) holds them until the claim expires, which is
    by design, and would only make every scenario 30 s longer."""
    service.poll_interval = 0.2
    service.stale_check_interval = 0.5
    service.claim_seconds = 3.0
    service.notify()


async def start_runs(store: StorageBackend, n: int, prefix: str, nap: float, hook_s: float) -> None:
    for i in range(n):
        try:
            await start(
                chaos_local,
                durable=True,
                storage=store,
                idempotency_key=f"{prefix}-{i}",
                steps=4,
                nap=nap,
                wait_hook=hook_s,
            )
        except WorkflowAlreadyRunningError:
            pass  # a starter killed earlier created it; the workers drive it
        except Exception as error:
            record_error(error)


def record_error(error: BaseException) -> None:
    """Write what a caller would see to ``errors.log``: the type, its bases, the text."""
    line = {
        "type": type(error).__name__,
        "bases": [c.__name__ for c in type(error).__mro__],
        "message": str(error),
    }
    with open(Path(os.environ["CHAOS_DIR"]) / "errors.log", "a") as f:
        f.write(json.dumps(line) + "\n")


async def wait_for(go: Path) -> None:
    while not go.exists():
        await asyncio.sleep(0.005)


async def main(argv: list[str]) -> None:
    command, spec, rest = argv[0], argv[1], argv[2:]
    store = open_storage(spec)
    await store.connect()
    # Every process of the local runtime fires due timers, as an application would.
    service = timer_service(store)
    tune(service)
    try:
        if command == "start":
            nap = float(rest[2]) if len(rest) > 2 else 0.5
            hook_s = float(rest[3]) if len(rest) > 3 else 0.0
            await start_runs(store, int(rest[0]), rest[1], nap, hook_s)
        elif command == "worker":
            await asyncio.sleep(float(rest[0]) if rest else 1e9)
        elif command == "resume":
            await wait_for(Path(rest[0]))
            outcomes = [resume(rid, storage=store) for rid in rest[1:]]
            await asyncio.gather(*outcomes, return_exceptions=True)
        elif command == "hooks":
            await wait_for(Path(rest[0]))
            sends = [resume_hook(token, {"ok": True}, storage=store) for token in rest[1:]]
            await asyncio.gather(*sends, return_exceptions=True)
        else:
            raise SystemExit(f"unknown command {command!r}")
    finally:
        # A resume still in flight restarts a stopped service when its run suspends
        # on a timer (test_regression_concurrent_resumes_stopped_timer_service_stays_
        # stopped); stop until it stays stopped, or its claims outlive the process.
        for _ in range(50):
            await service.stop()
            if not service.running:
                break
        await store.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
