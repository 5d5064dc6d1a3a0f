"""The processes of W4: a Redis server, and Celery workers and Beat run by the venv
under test.

Redis is the test suite's throwaway server (``tests.servers.RedisServer``: no
persistence, a free loopback port, one logical database per use). Workers are real
processes started as ``python -m celery -A <app> worker`` from an empty working
directory, with the workload scripts' directory on ``PYTHONPATH`` so that they import
the same workflow module as the client. Everything started here is killed when the
``with`` block ends, also on errors and Ctrl-C; the workers also die with the harness
if it is killed itself (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from bench.envs import log
from bench.proc import WORKLOADS

#: One process per worker: "one workflow worker and one step worker". No gossip, mingle
#: or heartbeat: each costs a second at start-up and chatter on Redis after.
WORKER = [
    *("--pool", "solo", "--concurrency", "1", "--loglevel", "warning"),
    *("--without-gossip", "--without-mingle", "--without-heartbeat"),
]
START_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1


class ClusterFailed(RuntimeError):
    """A worker or Beat exited or never became ready; the message has its log's tail."""


@contextlib.contextmanager
def redis_server() -> Iterator[object]:
    """A ``tests.servers.RedisServer`` on a free port, stopped and deleted after."""
    from tests.servers import RedisServer

    server = RedisServer.start()
    try:
        yield server
    finally:
        server.close()


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the harness dies (even SIGKILL), the
    # kernel kills the worker instead of leaving it attached to Redis and the storage.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    """The harness' environment without its pyworkflow settings, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PYWORKFLOW")
    }
    return {**env, "PYTHONPATH": str(WORKLOADS), **extra}


class Cluster:
    """Celery processes of one app (``-A app``) run by ``python``, sharing ``env``."""

    def __init__(self, python: Path, app: str, env: dict[str, str], label: str) -> None:
        self.python, self.app, self.env, self.label = python, app, env, label
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-celery-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [str(self.python), "-m", "celery", "-A", self.app, *argv],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the harness, which stops us
                preexec_fn=_die_with_parent,
            )
        self.procs[name] = proc
        return proc

    def _await(self, name: str, ready: Callable[[], bool]) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited {proc.returncode}" if proc.poll() is not None else "not ready"
                tail = self._log(name)[-1500:]
                raise ClusterFailed(f"{self.label} {name} {state}:\n{tail}")
            time.sleep(0.05)

    def worker(self, name: str, queues: list[str]) -> None:
        """Start a worker consuming ``queues``; return once it is ready."""
        proc = self._spawn(name, ["worker", "-n", f"{name}@%h", "-Q", ",".join(queues), *WORKER])
        # Written by the workload modules' worker_ready handler (w4_flows, floor_celery_app).
        marker = self.workdir / f"bench-ready.{proc.pid}"
        self._await(name, marker.exists)
        log(f"  {self.label}: {name} ready ({','.join(queues)})")

    def beat(self, scheduler: str) -> None:
        """Start Beat with ``scheduler`` and its own schedule file."""
        schedule = str(self.workdir / "beat-schedule")
        argv = ["beat", "--loglevel", "info", "--scheduler", scheduler, "-s", schedule]
        self._spawn("beat", argv)
        self._await("beat", lambda: "beat: Starting" in self._log("beat"))

    def logs(self) -> dict[str, str]:
        """The tail of every process's log (for an error report)."""
        return {name: self._log(name)[-1000:] for name in self.procs}

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()  # solo pool and Beat: no children to reap
        for proc in self.procs.values():
            proc.wait(timeout=10)
        self.procs.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
