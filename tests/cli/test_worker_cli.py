"""``pyworkflow worker run|status|list|queues`` against a real Redis and a SQLite file.

Workers are real ``python -m pyworkflow.cli ... worker run`` processes; every other
command is a real subprocess too, so the environment each one builds for itself
(broker, storage, modules) is what is tested.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyworkflow.cli import main, worker_run
from pyworkflow.cli import worker as worker_cli
from tests.servers import RedisServer
from tests.support import free_port, kill_tree, process_alive, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STATUS_KEYS = {"name", "status", "concurrency", "processed", "active_tasks"}
QUEUES = ["pyworkflow.default", "pyworkflow.workflows", "pyworkflow.steps", "pyworkflow.schedules"]


def _env(broker: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    if broker:
        env["PYWORKFLOW_CELERY_BROKER"] = broker
    return env


def cli(
    cwd: Path, *args: str, broker: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``python -m pyworkflow.cli ARGS`` in ``cwd``; the broker via the environment."""
    return subprocess.run(
        [sys.executable, "-m", "pyworkflow.cli", *args],
        cwd=cwd,
        env=_env(broker),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Worker:
    """A ``worker run`` process with its output in files."""

    def __init__(
        self, cwd: Path, broker: str, db: Path, *run_args: str, root: tuple[str, ...] = ()
    ) -> None:
        """``root`` replaces the default root options (module, storage, broker in the env):
        with it, they come from the settings file in ``cwd``."""
        self.cwd, self.broker, self.db = cwd, broker, db
        self.name = f"t{uuid.uuid4().hex[:8]}@%h"
        self.out, self.err = cwd / f"{self.name[:9]}.out", cwd / f"{self.name[:9]}.err"
        args = root or ("--module", "worker_app", "--storage", "sqlite", "--storage-path", str(db))
        command = [sys.executable, "-m", "pyworkflow.cli", *args, "worker", "run"]
        command += ["--pool", "solo", "-n", self.name, *run_args]
        env = _env(None if root else broker)
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)

    def listed(self) -> dict[str, Any] | None:
        """This worker's item in ``worker list --output json``, once it answers."""
        done = cli(
            self.cwd, "--output", "json", "worker", "list", "--timeout", "0.5", broker=self.broker
        )
        assert done.returncode == 0, done.stderr
        mine = [w for w in json.loads(done.stdout) if w["name"].startswith(self.name[:9])]
        assert self.proc.poll() is None, self.err.read_text()
        return mine[0] if mine else None

    def wait_ready(self) -> dict[str, Any]:
        return wait_until(self.listed, timeout=60, interval=0.2, message="worker never answered")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)

    def kill(self) -> None:
        if process_alive(self.proc.pid):
            kill_tree(self.proc.pid)
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def beat_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One worker on all queues with Beat, shared by the tests that only talk to it."""
    redis_server.ensure_running()
    cwd = tmp_path_factory.mktemp("worker")
    running = Worker(cwd, redis_server.fresh_url(), cwd / "wf.db", "-c", "1", "--beat")
    try:
        running.wait_ready()
        yield running
    finally:
        running.kill()


def run_workflow(running: Worker, name: str) -> str:
    """``workflows run NAME --arg x=2`` on the celery runtime; the printed result."""
    done = cli(
        running.cwd,
        *("--module", "worker_app", "--runtime", "celery", "--storage", "sqlite"),
        *("--storage-path", str(running.db), "--output", "plain"),
        *("workflows", "run", name, "--arg", "x=2"),
        broker=running.broker,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_worker_runs_a_workflow_started_from_the_cli(beat_worker: Worker) -> None:
    assert run_workflow(beat_worker, "wk_double") == "4"


def test_beat_wakes_a_sleeping_workflow(beat_worker: Worker) -> None:
    assert run_workflow(beat_worker, "wk_nap") == "3"


def test_the_banner_names_broker_storage_queues_and_workflows(beat_worker: Worker) -> None:
    banner = beat_worker.out.read_text()
    for text in (beat_worker.broker, str(beat_worker.db), "pyworkflow.schedules", "wk_nap"):
        assert text in banner
    assert "wk_double_step" in banner
    assert "pyworkflow: ✓ imported worker_app" in banner


def test_status_reports_the_worker(beat_worker: Worker) -> None:
    status = ("worker", "status")
    done = cli(beat_worker.cwd, "--output", "json", *status, broker=beat_worker.broker)
    assert done.returncode == 0, done.stderr
    (item,) = json.loads(done.stdout)
    assert set(item) >= STATUS_KEYS
    assert item["name"].startswith(beat_worker.name[:9])
    assert item["status"] == "online"
    assert item["concurrency"] == 1
    assert sorted(item["queues"]) == sorted(QUEUES)
    table = cli(beat_worker.cwd, *status, broker=beat_worker.broker)
    assert table.returncode == 0 and "online" in table.stdout
    listing = ("--output", "plain", "worker", "list")
    plain = cli(beat_worker.cwd, *listing, broker=beat_worker.broker)
    assert plain.stdout.strip() == item["name"]


def test_a_worker_on_chosen_queues_stops_cleanly_on_sigterm(redis_url: str, tmp_path: Path) -> None:
    db = tmp_path / "wf.db"
    running = Worker(
        tmp_path, redis_url, db, "--workflow", "--step", "--pool", "prefork", "-c", "1"
    )
    try:
        item = running.wait_ready()
        assert item["queues"] == ["pyworkflow.steps", "pyworkflow.workflows"]
        # A forked pool process has the storage and the modules too.
        assert run_workflow(running, "wk_double") == "4"
        assert running.stop(signal.SIGTERM) == 0
        assert "Warm shutdown" in running.out.read_text() + running.err.read_text()
    finally:
        running.kill()


def test_settings_file_choices_and_json_banner_and_sigint(redis_url: str, tmp_path: Path) -> None:
    """Module, storage and broker from pyworkflow.toml (no option, no env) reach the worker."""
    (tmp_path / "pyworkflow.toml").write_text(
        f'module = "worker_app"\n[storage]\ntype = "sqlite"\nbase_path = "wf.db"\n'
        f'[celery]\nbroker = "{redis_url}"\n'
    )
    db = tmp_path / "wf.db"
    running = Worker(tmp_path, redis_url, db, "--step", "-l", "warning", root=("--output", "json"))
    try:
        running.wait_ready()
        banner, _ = json.JSONDecoder().raw_decode(running.out.read_text())
        assert banner["broker"] == redis_url
        assert banner["storage"] == f"sqlite {db}"
        assert banner["queues"] == ["pyworkflow.steps"]
        assert banner["workflows"] == ["wk_double", "wk_nap"]
        assert banner["hostname"].startswith(running.name[:9])
        assert running.stop(signal.SIGINT) == 0
    finally:
        running.kill()


def test_unreachable_broker_fails_fast_with_one_line(tmp_path: Path) -> None:
    bad = f"redis://127.0.0.1:{free_port()}/0"
    done = cli(tmp_path, "--module", "worker_app", "worker", "run", broker=bad)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: Cannot reach the Celery broker at {bad}")
    assert "PYWORKFLOW_CELERY_BROKER" in line
    assert not (tmp_path / "pyworkflow_data").exists()  # nothing created
    listed = cli(tmp_path, "worker", "list", "--broker", bad)
    assert listed.returncode == 1 and "Cannot reach the Celery broker" in listed.stderr


def test_no_worker_answering(redis_url: str, tmp_path: Path) -> None:
    listed = cli(
        tmp_path, "--output", "json", "worker", "list", "--timeout", "0.3", broker=redis_url
    )
    assert listed.returncode == 0
    assert json.loads(listed.stdout) == []
    assert "No workers responded" in listed.stderr
    status = cli(
        tmp_path, "--output", "json", "worker", "status", "--timeout", "0.3", broker=redis_url
    )
    assert status.returncode == 1
    assert json.loads(status.stdout) == []
    table = cli(tmp_path, "worker", "list", "--timeout", "0.3", broker=redis_url)
    assert "No workers responded" in table.stdout


def test_queues_json_and_table(tmp_path: Path) -> None:
    done = cli(tmp_path, "--output", "json", "worker", "queues", broker="redis://127.0.0.1:1/0")
    assert done.returncode == 0, done.stderr  # no broker needed
    items = json.loads(done.stdout)
    assert [q["name"] for q in items] == QUEUES
    assert all({"name", "routing_key", "exchange", "purpose"} <= set(q) for q in items)
    assert {q["name"]: q["routing_key"] for q in items}["pyworkflow.steps"] == "workflow.step.#"
    assert {q["exchange"] for q in items} == {"pyworkflow"}
    table = cli(tmp_path, "worker", "queues")
    assert "workflow.schedule.#" in table.stdout and "Beat's timer tick" in table.stdout
    assert {q["name"]: q["tasks"] for q in items}["pyworkflow.schedules"] == [
        "pyworkflow.execute_scheduled_workflow",
        "pyworkflow.tick",
    ]
    plain = cli(tmp_path, "--output", "plain", "worker", "queues")
    assert plain.stdout.split() == QUEUES


def test_option_errors() -> None:
    runner = CliRunner()
    memory = runner.invoke(main, ["--storage", "memory", "worker", "run", "--broker", "memory://"])
    assert memory.exit_code == 1
    assert "cannot use in-memory storage" in memory.output
    green = runner.invoke(main, ["worker", "run", "--beat", "--pool", "gevent"])
    assert green.exit_code == 1 and "--beat does not work with the gevent pool" in green.output
    scale = runner.invoke(main, ["worker", "run", "--autoscale", "ten"])
    assert scale.exit_code == 1 and "--autoscale takes MAX,MIN" in scale.output
    level = runner.invoke(main, ["worker", "run", "-l", "loud"])
    assert level.exit_code == 2


def test_argv_and_queue_selection() -> None:
    from pyworkflow.celery import queues

    assert worker_run.select_queues(True, False, True) == [
        queues.WORKFLOWS_QUEUE,
        queues.SCHEDULES_QUEUE,
    ]
    assert worker_run.select_queues(False, False, False) == list(queues.QUEUE_BINDINGS)
    assert set(worker_cli.QUEUE_PURPOSES) == set(queues.QUEUE_BINDINGS)
    options = {"concurrency": 4, "hostname": "w1@%h", "beat": True, "pool": "threads"}
    options |= {
        "max_tasks_per_child": 100,
        "time_limit": None,
        "scheduler": worker_run.BEAT_SCHEDULER,
    }
    assert worker_run.build_argv(["pyworkflow.steps"], "debug", options) == [
        "worker",
        "--loglevel=DEBUG",
        "--queues=pyworkflow.steps",
        "--concurrency=4",
        "--hostname=w1@%h",
        "--beat",
        "--pool=threads",
        "--max-tasks-per-child=100",
        "--scheduler=pyworkflow.celery.scheduler:PyWorkflowScheduler",
    ]
