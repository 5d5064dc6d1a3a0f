"""``pyworkflow scheduler run`` as a real process: it fires an interval schedule for
``--duration`` seconds, stops cleanly on SIGTERM/SIGINT (letting a run in flight
finish), and a second signal leaves that run, durably, to the next start."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_schedules_cli import Cli, cli_env
from tests.support import wait_until

STOP_KEYS = {
    "status",
    "reason",
    "active_schedules",
    "storage",
    "runtime",
    "poll_interval",
    "ran_seconds",
    "abandoned_tasks",
}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def runs_of(cli: Cli, workflow_name: str) -> list[dict[str, Any]]:
    rows = cli.json("runs", "list", "--limit", "1000")
    return [r for r in rows if r["workflow_name"] == workflow_name]


def test_duration_fires_an_interval_schedule(cli: Cli) -> None:
    made = cli.json("schedules", "create", "sched_app_tick", "--interval", "1s")
    done = cli("--output", "json", "scheduler", "run", "--duration", "4", "--poll-interval", "0.5")
    summary = json.loads(done.stdout)
    assert set(summary) == STOP_KEYS
    assert summary["reason"] == "duration" and summary["active_schedules"] == 1
    assert summary["storage"] == f"sqlite ({Path(cli.db).resolve()})"
    # With JSON on stdout the status lines go to stderr.
    assert "Scheduler started: 1 active schedule, storage sqlite" in done.stderr
    assert "Scheduler stopped" in done.stderr

    runs = runs_of(cli, "sched_app_tick")
    assert len(runs) >= 2
    # Runs still going at the end were let finish.
    assert {r["status"] for r in runs} == {"completed"}
    assert cli.json("schedules", "show", made["schedule_id"])["total_runs"] == len(runs)


@pytest.fixture
def serve(cli: Cli, tmp_path: Path) -> Iterator[Any]:
    """Start ``scheduler run`` (no duration) and wait for its startup line."""
    procs: list[subprocess.Popen[str]] = []

    def start(**env: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            cli.argv("scheduler", "run", "--poll-interval", "0.5"),
            cwd=cli.cwd,
            env=cli_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Scheduler started:"), (first, proc.stderr)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_it_cleanly(cli: Cli, serve: Any, sig: signal.Signals) -> None:
    proc = serve()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.rstrip().endswith("Scheduler stopped")
    assert "Error" not in err and "Traceback" not in err


def test_stop_lets_the_run_in_flight_finish(cli: Cli, serve: Any, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    cli.json("schedules", "create", "sched_app_slow", "--interval", "1h", "--schedule-id", "slow")
    proc = serve(SCHED_APP_MARKER=str(marker), SCHED_APP_NAP="1")
    wait_until(marker.exists, timeout=30, message="the scheduled run never started")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Stopping: letting" in out and out.rstrip().endswith("Scheduler stopped")
    (run,) = runs_of(cli, "sched_app_slow")
    assert run["status"] == "completed"


def test_second_signal_leaves_the_run_for_later(cli: Cli, serve: Any, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    cli.json("schedules", "create", "sched_app_slow", "--interval", "1h", "--schedule-id", "slow")
    proc = serve(SCHED_APP_MARKER=str(marker), SCHED_APP_NAP="600")
    wait_until(marker.exists, timeout=30, message="the scheduled run never started")
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("Stopping: letting")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "their runs resume on the next start" in out
    assert out.rstrip().endswith("Scheduler stopped")
    # Still durable: RUNNING, its lease naming a process that is gone.
    (run,) = runs_of(cli, "sched_app_slow")
    assert run["status"] == "running"


def test_scheduler_run_refuses_the_celery_runtime(tmp_path: Path) -> None:
    """On Celery, Beat fires schedules: a local scheduler would run them in the wrong place."""
    from click.testing import CliRunner

    from pyworkflow.cli import main

    db = str(tmp_path / "celery.db")
    result = CliRunner().invoke(
        main, ["--runtime", "celery", "--storage-path", db, "scheduler", "run", "--duration", "1"]
    )
    assert result.exit_code == 1
    assert "worker run --beat" in result.output
    assert not Path(db).exists()
