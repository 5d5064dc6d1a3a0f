"""Real Celery processes for the Celery runtime tests.

A :class:`Cluster` runs ``python -m celery -A pyworkflow.celery.app worker|beat``
subprocesses against one Redis database and one storage (a SQLite file in a temp
directory, or PostgreSQL), with ``PYWORKFLOW_DISCOVER=tests.celery.flows``. The
``cluster`` fixture starts one per test module, as in DISTRIBUTED.md: a workflow worker
(``-Q pyworkflow.workflows,pyworkflow.schedules``), a step worker
(``-Q pyworkflow.steps``, two processes) and Beat. Processes are SIGKILLed (with their
children) at teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyworkflow.storage.base import StorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.servers import RedisServer
from tests.support import kill_tree, process_alive, wait_until

ROOT = Path(__file__).resolve().parents[2]
CELERY = [sys.executable, "-m", "celery", "-A", "pyworkflow.celery.app"]
#: The processes of DISTRIBUTED.md (its commands are checked against these).
WORKFLOW_WORKER = ["worker", "--loglevel=info", "-Q", "pyworkflow.workflows,pyworkflow.schedules"]
STEP_WORKER = ["worker", "--loglevel=info", "-Q", "pyworkflow.steps"]
BEAT = ["beat", "--loglevel=info", "--scheduler", "pyworkflow.celery.scheduler:PyWorkflowScheduler"]
# Test-only flags: no gossip/mingle/heartbeat (each costs a second at startup).
FAST = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
#: The test flows, and every example of examples/celery/durable (its __init__ imports them).
DISCOVER = (
    "tests.celery.flows,tests.celery.hook_flows,tests.celery.child_flows,"
    "tests.celery.schedule_flows,examples.celery.durable"
)


class Cluster:
    """Celery workers and Beat processes sharing a broker and a storage."""

    def __init__(self, workdir: Path, broker: str, backend: str, storage_env: dict[str, str]):
        self.workdir = workdir
        self.broker = broker
        self.env = {
            **os.environ,
            "PYWORKFLOW_CELERY_BROKER": broker,
            "PYWORKFLOW_CELERY_RESULT_BACKEND": backend,
            "PYWORKFLOW_DISCOVER": DISCOVER,
            "PYWORKFLOW_TEST_DIR": str(workdir),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **storage_env,
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, list[str]] = {}

    def log(self, name: str) -> str:
        """Everything process ``name`` printed so far."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, name: str, argv: list[str], ready: str) -> subprocess.Popen[bytes]:
        """Start ``celery <argv>`` as ``name``; return once its log shows ``ready``."""
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [*CELERY, *argv], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs[name], self.argv[name] = proc, argv
        wait_until(
            lambda: ready in self.log(name) or proc.poll() is not None,
            timeout=30,
            interval=0.05,
            message=f"{name} never became ready",
        )
        assert proc.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
        return proc

    def worker(self, name: str, base: list[str], *options: str) -> subprocess.Popen[bytes]:
        """A worker named ``name@%h`` (``base`` is WORKFLOW_WORKER or STEP_WORKER)."""
        return self.start(name, [*base, *FAST, "-n", f"{name}@%h", *options], " ready.")

    def beat(self, name: str) -> subprocess.Popen[bytes]:
        """A Beat process with its own schedule file."""
        return self.start(name, [*BEAT, "-s", str(self.workdir / f"{name}-schedule")], "beat:")

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` and its children (a crash)."""
        proc = self.procs.pop(name)
        kill_tree(proc.pid)
        proc.wait(timeout=10)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` again with the arguments it had."""
        argv = self.argv[name]
        ready = "beat:" if argv[0] == "beat" else " ready."
        return self.start(name, argv, ready)

    def alive(self, name: str) -> bool:
        return name in self.procs and process_alive(self.procs[name].pid)

    def close(self) -> None:
        for name in list(self.procs):
            self.kill(name)


def start_default(cluster: Cluster) -> Cluster:
    """The DISTRIBUTED.md topology: workflow worker, two-process step worker, Beat."""
    cluster.worker("wf", WORKFLOW_WORKER, "--pool=solo")
    cluster.worker("steps", STEP_WORKER, "--pool=prefork", "--concurrency=2")
    cluster.beat("beat")
    return cluster


def new_cluster(redis_server: RedisServer, workdir: Path, **env: str) -> Cluster:
    """A cluster (no process started yet) on a fresh Redis database and a SQLite file in
    ``workdir``; ``env`` adds settings, e.g. ``PYWORKFLOW_LEASE_SECONDS="3"``."""
    redis_server.ensure_running()
    storage_env = {
        "PYWORKFLOW_STORAGE_TYPE": "sqlite",
        "PYWORKFLOW_STORAGE_PATH": str(workdir / "wf.db"),
        "PYWORKFLOW_TEST_REDISPATCH_MARGIN": "1",
        **env,
    }
    return Cluster(workdir, redis_server.fresh_url(), redis_server.fresh_url(), storage_env)


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The module's cluster on a fresh Redis database and a SQLite file."""
    group = new_cluster(redis_server, tmp_path_factory.mktemp("celery"))
    try:
        yield start_default(group)
    finally:
        group.close()


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[StorageBackend]:
    """The cluster's SQLite storage, opened by the test process."""
    storage = SQLiteStorageBackend(cluster.env["PYWORKFLOW_STORAGE_PATH"])
    await storage.connect()
    yield storage
    await storage.disconnect()


@pytest.fixture
def celery_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The test process talks to the cluster's broker (``runtime="celery"``)."""
    monkeypatch.setenv("PYWORKFLOW_CELERY_BROKER", cluster.broker)
    monkeypatch.setenv("PYWORKFLOW_TEST_DIR", str(cluster.workdir))
    return dict(cluster.env)
