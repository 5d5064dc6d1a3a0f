"""A Celery *world* for the chaos scenarios: real Redis, real storage (a SQLite file or a
PostgreSQL database), two workflow workers, two step workers and Beat, all real processes
(tests/celery/conftest.py's :class:`Cluster`), with short recovery timings, and the
fault actions on them (kill, restart, one more Beat) that the scenarios use.

A world lives across many scenario iterations (the soak keeps it for its whole length);
each iteration uses its own runs and checks only them (tests/chaos/celery_checks.py).

Example::

    with RedisServer.start() as redis:
        world = World(redis).start()          # the processes
        await world.connect()                 # the storage, in this event loop
        outcome = await scenario_sigkill(world, seed=1)   # tests/chaos/scenarios_celery.py
        await world.disconnect()
        world.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pyworkflow.celery.app import create_celery_app
from pyworkflow.engine import dispatch
from pyworkflow.runtime import celery as celery_runtime  # registers runtime="celery"
from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from pyworkflow.testing.invariants import Violation
from tests.celery.conftest import STEP_WORKER, WORKFLOW_WORKER, Cluster
from tests.chaos.celery_app import EffectLog
from tests.servers import PostgresServer, RedisServer
from tests.support import descendants, postgres_env, wait_until

assert celery_runtime.CeleryRuntime is not None  # imported for its registration

T = TypeVar("T")

#: Recovery timings of every process of a world (and of this one: start() arms the
#: resume guard). A dead activation's run is taken over after 3 s, a lost resume is
#: replaced after 3 s, a step attempt with no outcome is sent again after 6 s, an
#: unacknowledged message of a killed worker is handed out again after 15 s.
TIMINGS = {
    "PYWORKFLOW_LEASE_SECONDS": "3",
    "PYWORKFLOW_RESUME_GUARD_SECONDS": "3",
    "PYWORKFLOW_STEP_REDISPATCH_SECONDS": "6",
    "PYWORKFLOW_FOLLOWUP_DELAY_SECONDS": "3",
    "PYWORKFLOW_CELERY_VISIBILITY_TIMEOUT": "15",
}
#: Two workflow workers: two resumes of one run can then really run at once (and one
#: survives while the other is killed); two step workers of one pool process each.
WF_WORKERS = ("wf1", "wf2")
STEP_WORKERS = ("steps1", "steps2")


class World:
    """Redis, a storage and the DISTRIBUTED.md processes, with short recovery timings."""

    def __init__(self, redis: RedisServer, pg: PostgresServer | None = None) -> None:
        self.redis, self.pg = redis, pg
        self.workdir = Path(tempfile.mkdtemp(prefix="pyworkflow-chaos-"))
        self.effects = EffectLog(self.workdir / "effects.log")
        self.killed: set[int] = set()  # every pid SIGKILLed in this world
        self.storage: StorageBackend
        self.cluster: Cluster
        self._db = ""
        self._app: Any = None
        # Fault actions get threads of their own: the loop's default executor may be
        # full of start() calls retrying their sends while Redis is down.
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="chaos-world")

    @property
    def kind(self) -> str:
        return "postgres" if self.pg is not None else "sqlite"

    def start(self) -> World:
        """Create the storage and start the processes (in parallel: each takes ~1 s)."""
        self.redis.ensure_running()
        if self.pg is None:
            path = str(self.workdir / "wf.db")
            env = {"PYWORKFLOW_STORAGE_TYPE": "sqlite", "PYWORKFLOW_STORAGE_PATH": path}
        else:
            self.pg.ensure_running()
            self._db = f"chaos_{os.getpid()}_{int(time.time() * 1000) % 10**9}"
            dsn = self.pg.create_database(self._db)
            # A crash (kill) of the server must not lose acknowledged commits.
            self.pg._execute(f"ALTER DATABASE {self._db} SET synchronous_commit = on")
            env = postgres_env(dsn)
        env |= {**TIMINGS, "PYWORKFLOW_DISCOVER": "tests.chaos.celery_app"}
        self.cluster = Cluster(self.workdir, self.redis.fresh_url(), self.redis.fresh_url(), env)
        launches: list[tuple[Any, ...]] = [(n, WORKFLOW_WORKER, "--pool=solo") for n in WF_WORKERS]
        launches += [(n, STEP_WORKER, "--pool=prefork", "--concurrency=1") for n in STEP_WORKERS]
        self._parallel([lambda a=a: self.cluster.worker(*a) for a in launches])
        self.cluster.beat("beat")
        return self

    @staticmethod
    def _parallel(calls: list[Any]) -> None:
        with ThreadPoolExecutor(len(calls)) as pool:
            for future in [pool.submit(c) for c in calls]:
                future.result()

    def activate(self) -> None:
        """Point this process at the world: its broker, its side-effect directory, and
        the resume guard ``start()`` arms."""
        os.environ["PYWORKFLOW_CELERY_BROKER"] = self.cluster.broker
        os.environ["PYWORKFLOW_CELERY_RESULT_BACKEND"] = self.cluster.env[
            "PYWORKFLOW_CELERY_RESULT_BACKEND"
        ]
        os.environ["PYWORKFLOW_TEST_DIR"] = str(self.workdir)
        dispatch.RESUME_GUARD_SECONDS = float(TIMINGS["PYWORKFLOW_RESUME_GUARD_SECONDS"])

    def new_storage(self) -> StorageBackend:
        """A storage object of this world (connect it in the event loop that uses it)."""
        if self.pg is None:
            return SQLiteStorageBackend(self.env["PYWORKFLOW_STORAGE_PATH"])
        return PostgresStorageBackend(dsn=self.pg.dsn_for(self._db))

    async def connect(self) -> World:
        """Open :attr:`storage` in the running event loop and point this process here."""
        self.storage = self.new_storage()
        await self.storage.connect()
        self.activate()
        return self

    async def disconnect(self) -> None:
        await self.storage.disconnect()

    def close(self) -> None:
        """Stop every process and drop the storage (not a fault: the world is done)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.cluster.close()
        if self.pg is not None and self.pg.running:
            self.pg.drop_database(self._db)
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def env(self) -> dict[str, str]:
        return self.cluster.env

    @property
    def app(self) -> Any:
        """A Celery app that publishes to this world's broker (for duplicate messages)."""
        if self._app is None:
            backend = self.env["PYWORKFLOW_CELERY_RESULT_BACKEND"]
            self._app = create_celery_app(self.cluster.broker, backend)
        return self._app

    # -- processes -------------------------------------------------------------------

    async def blocking(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (start a process, stop a server) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def repair(self) -> None:
        """Start again whatever an iteration left dead (servers first), e.g. after a
        failed iteration, so the next one begins with the whole topology."""
        self.redis.ensure_running()
        if self.pg is not None:
            self.pg.ensure_running()
        for name in (*WF_WORKERS, *STEP_WORKERS, "beat"):
            if not self.cluster.alive(name):
                if name in self.cluster.procs:
                    self.cluster.kill(name)
                self.restart(name)
        if "beat2" in self.cluster.procs:
            self.cluster.kill("beat2")

    def casualties(self) -> list[Violation]:
        """Processes of the topology that died by themselves (the harness restarts
        every process it kills), or that logged an unrecoverable error since they
        were last ready (such a worker may linger without consuming anything)."""
        found = []
        for name in (*WF_WORKERS, *STEP_WORKERS, "beat"):
            log = self.log_tail(name)
            fatal = log.rfind("Unrecoverable error")
            if self.cluster.alive(name) and (fatal < 0 or fatal < log.rfind(" ready.")):
                continue
            proc = self.cluster.procs.get(name)
            state = "alive" if self.cluster.alive(name) else f"exit code {proc and proc.poll()}"
            line = log[fatal:].splitlines()[0][:200] if fatal >= 0 else "no unrecoverable error"
            found.append(Violation("process_died", name, f"{state}: {line}"))
        return found

    def restart(self, name: str) -> None:
        """Start ``name`` again with its arguments; return once the new process is ready
        (its log holds the ready lines of its predecessors too)."""
        path = self.workdir / f"{name}.log"
        before = path.stat().st_size if path.exists() else 0
        self.cluster.restart(name)
        ready = "beat:" if self.cluster.argv[name][0] == "beat" else " ready."
        proc = self.cluster.procs[name]

        def up() -> bool:
            with open(path, "rb") as f:
                f.seek(before)
                return ready in f.read().decode(errors="replace") or proc.poll() is not None

        wait_until(up, timeout=30, interval=0.05, message=f"{name} never became ready")

    def add_beat(self, name: str) -> None:
        """One more Beat process, ``name`` (its own schedule file)."""
        if name in self.cluster.argv:  # started before in this world: its log is not empty
            self.restart(name)
        else:
            self.cluster.beat(name)

    def log_tail(self, name: str, size: int = 65536) -> str:
        """The end of process ``name``'s log (logs grow for the whole soak)."""
        path = self.workdir / f"{name}.log"
        with contextlib.suppress(OSError), open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - size))
            return f.read().decode(errors="replace")
        return ""

    def pids(self, name: str) -> set[int]:
        """Process ``name`` and its children (prefork pool processes)."""
        proc = self.cluster.procs[name]
        return {proc.pid, *descendants(proc.pid)}

    def kill(self, name: str) -> set[int]:
        """SIGKILL process ``name`` with its children; the pids that died."""
        victims = self.pids(name)
        self.killed |= victims
        self.cluster.kill(name)
        return victims

    def kill_pool_child(self, worker: str) -> set[int]:
        """SIGKILL one pool process of step worker ``worker`` (its parent replaces it and
        gives the message back: ``task_reject_on_worker_lost``)."""
        children = sorted(descendants(self.cluster.procs[worker].pid))
        if not children:
            return set()
        self.killed.add(children[0])
        os.kill(children[0], signal.SIGKILL)
        return {children[0]}
