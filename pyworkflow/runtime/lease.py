"""Activation leases: one activation advances a run at a time.

A lease is taken before an activation runs and renewed while it runs; the final
commit releases it. Owners are ``<host>:<pid>:<random>``, so a lease left behind by
a process that died on this machine can be taken over at once instead of waiting
for it to expire.

Example:
    >>> owner = new_owner()
    >>> owner_is_dead(owner)
    False
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import UTC, datetime
from types import TracebackType

from loguru import logger

from pyworkflow.storage.base import StorageBackend

#: How long an activation's lease lasts without renewal (renewed every third of it).
#: A run whose activation died is taken over after this long; distributed workers,
#: whose activations are short, can set PYWORKFLOW_LEASE_SECONDS lower.
LEASE_SECONDS = float(os.environ.get("PYWORKFLOW_LEASE_SECONDS", "30"))
HOST = socket.gethostname()


def new_owner() -> str:
    """A fresh owner id for one activation."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` ran on this host in a process that no longer exists."""
    parts = owner.split(":")
    if len(parts) < 3:
        return False
    host, pid_text = ":".join(parts[:-2]), parts[-2]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def acquire(storage: StorageBackend, run_id: str, owner: str) -> bool:
    """Take the run's lease (marking it RUNNING), stealing it from a dead local holder."""
    now = datetime.now(UTC)
    if await storage.begin_activation(run_id, owner, LEASE_SECONDS, now):
        return True
    lease = await storage.get_run_lease(run_id)
    if lease is not None and owner_is_dead(lease.owner):
        logger.info("Taking over run {} from dead activation {}", run_id, lease.owner)
        return await storage.begin_activation(
            run_id, owner, LEASE_SECONDS, now, steal_from=lease.owner
        )
    return False


class LeaseKeeper:
    """Renews a lease in the background while an activation runs."""

    def __init__(self, storage: StorageBackend, run_id: str, owner: str | None) -> None:
        self.storage = storage
        self.run_id = run_id
        self.owner = owner
        self._task: asyncio.Task[None] | None = None

    async def _renew_forever(self) -> None:
        assert self.owner is not None
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                ok = await self.storage.renew_run_lease(
                    self.run_id, self.owner, LEASE_SECONDS, datetime.now(UTC)
                )
            except Exception as error:  # a transient storage error must not kill the run
                logger.warning("Could not renew lease of run {}: {}", self.run_id, error)
                continue
            if not ok:
                logger.warning("Lost the lease of run {}", self.run_id)
                return

    async def __aenter__(self) -> LeaseKeeper:
        if self.owner is not None:
            self._task = asyncio.get_running_loop().create_task(self._renew_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if exc is not None and self.owner is not None:
            # The activation died without its final commit: free the run for others.
            try:
                await asyncio.shield(self.storage.release_run_lease(self.run_id, self.owner))
            except Exception:
                logger.warning("Could not release the lease of run {}", self.run_id)
