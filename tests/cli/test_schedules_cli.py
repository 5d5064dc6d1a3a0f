"""``pyworkflow schedules ...`` on a real SQLite file: subprocess calls for every
command's ``--output json`` keys, table/plain output, and the error cases (exit 1, a
clear message, storage unchanged). The workflows live in ``schedules_app.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from pyworkflow import step, workflow
from pyworkflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = Path(__file__).resolve().parent

LIST_KEYS = {
    "schedule_id",
    "workflow_name",
    "status",
    "spec",
    "overlap_policy",
    "next_run_time",
    "total_runs",
    "successful_runs",
    "failed_runs",
    "created_at",
}
SHOW_KEYS = LIST_KEYS | {
    "skipped_runs",
    "buffered_count",
    "last_run_at",
    "last_run_id",
    "running_run_ids",
    "updated_at",
    "paused_at",
    "args",
    "kwargs",
}
SPEC_KEYS = {"cron", "interval", "calendar", "timezone", "start_at", "end_at", "jitter"}


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment minus PYWORKFLOW_* settings, with the app importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(APP_DIR), str(ROOT)])
    env.update(extra)
    return env


@dataclass
class Cli:
    """``pyworkflow --module schedules_app`` on one SQLite file, run as a subprocess."""

    cwd: Path

    @property
    def db(self) -> str:
        return str(self.cwd / "schedules.db")

    def argv(self, *args: str) -> list[str]:
        root = ["--module", "schedules_app", "--storage", "sqlite", "--storage-path", self.db]
        return [sys.executable, "-m", "pyworkflow.cli", *root, *args]

    def __call__(
        self, *args: str, ok: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env=env or cli_env(),
            stdin=subprocess.DEVNULL,  # not a terminal, as in scripts and CI
            capture_output=True,
            text=True,
            timeout=60,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self("--output", "json", *args).stdout)

    def fails(self, *args: str) -> str:
        """Run a command that must fail; its stderr."""
        done = self(*args, ok=False)
        assert done.returncode == 1, (done.stdout, done.stderr)
        return done.stderr


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def local(cli: Cli) -> Any:
    """The same commands in this process (fast), on the same SQLite file, with the
    app's workflows registered here (the registry is reset after each test)."""

    @step(name="sched_app_stamp")
    async def stamp(label: str) -> str:
        return f"tick:{label}"

    @workflow(name="sched_app_tick")
    async def tick() -> str:
        return await stamp("scheduled")

    @workflow(name="sched_app_other")
    async def other() -> str:
        return await stamp("other")

    def invoke(*args: str, code: int = 0) -> str:
        root = ["--storage", "sqlite", "--storage-path", cli.db]
        result = CliRunner().invoke(main, [*root, *args])
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def peek(local: Any, *args: str) -> Any:
    return json.loads(local("--output", "json", *args))


def test_create_show_list_json(cli: Cli, local: Any) -> None:
    made = cli.json("schedules", "create", "sched_app_tick", "--interval", "15m",
                    "--schedule-id", "every15", "--overlap", "allow_all")  # fmt: skip
    assert set(made) == SHOW_KEYS
    assert set(made["spec"]) == SPEC_KEYS | {"description"}
    assert made["spec"]["interval"] == "15m" and made["spec"]["timezone"] == "UTC"
    assert made["status"] == "active" and made["overlap_policy"] == "allow_all"
    local("schedules", "create", "sched_app_other", "--cron", "0 9 * * MON-FRI",
          "--timezone", "Europe/Berlin", "--schedule-id", "weekdays")  # fmt: skip

    shown = cli.json("schedules", "show", "weekdays")
    assert set(shown) == SHOW_KEYS
    assert shown["spec"]["cron"] == "0 9 * * MON-FRI"
    assert shown["spec"]["timezone"] == "Europe/Berlin"
    assert shown["next_run_time"] is not None and shown["running_run_ids"] == []

    rows = cli.json("schedules", "list")
    assert [set(r) for r in rows] == [LIST_KEYS, LIST_KEYS]
    by_id = {r["schedule_id"]: r for r in rows}
    assert by_id["weekdays"]["spec"] == "Cron: 0 9 * * MON-FRI (Europe/Berlin)"
    assert by_id["every15"]["spec"] == "Every 15m (UTC)"
    only = peek(local, "schedules", "list", "--workflow", "sched_app_tick")
    assert [r["schedule_id"] for r in only] == ["every15"]
    assert peek(local, "schedules", "list", "--status", "paused") == []

    plain = cli("--output", "plain", "schedules", "list").stdout.split()
    assert sorted(plain) == ["every15", "weekdays"]
    table = cli("schedules", "list").stdout
    assert "every15" in table and "sched_app_other" in table and "active" in table
    detail = local("schedules", "show", "every15")
    assert "Every 15m (UTC)" in detail and "allow_all" in detail


def test_create_errors_store_nothing(cli: Cli, local: Any) -> None:
    unknown = cli.fails("schedules", "create", "nightly", "--interval", "5m")
    assert "Workflow 'nightly' is not registered" in unknown
    assert "sched_app_other, sched_app_slow, sched_app_tick" in unknown
    create = ("schedules", "create", "sched_app_tick")
    assert "Give --cron" in local(*create, code=1)
    assert "not both" in local(*create, "--cron", "* * * * *", "--interval", "5m", code=1)
    bad_cron = local(*create, "--cron", "0 9 * *", code=1)
    assert "Error: Invalid cron expression: 0 9 * *. Use 5 fields" in bad_cron
    assert "Invalid interval '1.5h'" in local(*create, "--interval", "1.5h", code=1)
    zone = local(*create, "--interval", "5m", "--timezone", "Mars/Olympus", code=1)
    assert "Unknown timezone 'Mars/Olympus'" in zone
    assert "buffer_one" in local(*create, "--interval", "5m", "--overlap", "sometimes", code=2)
    assert peek(local, "schedules", "list") == []

    local(*create, "--interval", "5m", "--schedule-id", "s1")
    again = local("schedules", "create", "sched_app_other", "--interval", "1m",
                  "--schedule-id", "s1", code=1)  # fmt: skip
    assert "Schedule already exists: s1" in again
    (row,) = peek(local, "schedules", "list")
    assert row["workflow_name"] == "sched_app_tick"


def test_pause_resume_update(cli: Cli, local: Any) -> None:
    local("schedules", "create", "sched_app_tick", "--cron", "0 9 * * *", "--schedule-id", "s")
    paused = cli.json("schedules", "pause", "s")
    assert set(paused) == {"schedule_id", "status", "next_run_time"}
    assert paused["schedule_id"] == "s" and paused["status"] == "paused"
    assert peek(local, "schedules", "show", "s")["paused_at"] is not None
    assert "Paused schedule s" in local("schedules", "pause", "s")
    resumed = cli.json("schedules", "resume", "s")
    assert set(resumed) == {"schedule_id", "status", "next_run_time"}
    assert resumed["status"] == "active" and resumed["next_run_time"] is not None

    updated = cli.json("schedules", "update", "s", "--interval", "10m", "--overlap", "buffer_all")
    assert set(updated) == SHOW_KEYS
    # The new rule replaces the old one; the time zone is kept.
    assert updated["spec"]["interval"] == "10m" and updated["spec"]["cron"] is None
    assert updated["overlap_policy"] == "buffer_all" and updated["spec"]["timezone"] == "UTC"
    moved = peek(local, "schedules", "update", "s", "--cron", "30 8 * * *",
                 "--timezone", "Asia/Tokyo")  # fmt: skip
    assert moved["spec"]["cron"] == "30 8 * * *" and moved["spec"]["interval"] is None
    tokyo = datetime.fromisoformat(moved["next_run_time"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert tokyo.strftime("%H:%M") == "08:30"

    assert "Nothing to change" in local("schedules", "update", "s", code=1)
    assert "Invalid cron expression" in local("schedules", "update", "s", "--cron", "x", code=1)
    assert peek(local, "schedules", "show", "s")["spec"]["cron"] == "30 8 * * *"


def test_delete_needs_force_without_a_terminal(cli: Cli, local: Any) -> None:
    local("schedules", "create", "sched_app_tick", "--interval", "1h", "--schedule-id", "gone")
    assert "use --force" in cli.fails("schedules", "delete", "gone")
    assert peek(local, "schedules", "show", "gone")["status"] == "active"

    assert cli.json("schedules", "delete", "gone", "--force") == {
        "schedule_id": "gone",
        "deleted": True,
    }
    assert peek(local, "schedules", "show", "gone")["status"] == "deleted"
    assert "is deleted" in local("schedules", "resume", "gone", code=1)
    assert peek(local, "schedules", "show", "gone")["status"] == "deleted"


@pytest.mark.parametrize(("answer", "status"), [("n", "active"), ("y", "deleted")])
def test_delete_asks_on_a_terminal(cli: Cli, local: Any, answer: str, status: str) -> None:
    local("schedules", "create", "sched_app_tick", "--interval", "1h", "--schedule-id", "ask")
    controller, terminal = os.openpty()
    try:
        proc = subprocess.Popen(
            cli.argv("schedules", "delete", "ask"),
            cwd=cli.cwd,
            env=cli_env(),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(terminal)
        os.write(controller, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(controller)
    assert "Delete schedule ask of workflow sched_app_tick?" in err
    assert proc.returncode == (0 if answer == "y" else 1), (out, err)
    assert peek(local, "schedules", "show", "ask")["status"] == status


def test_trigger_runs_now(cli: Cli, local: Any) -> None:
    local("schedules", "create", "sched_app_tick", "--cron", "0 0 1 1 *", "--schedule-id", "t")
    data = cli.json("schedules", "trigger", "t")
    assert set(data) == {"schedule_id", "run_id", "triggered", "workflow_name"}
    assert data["schedule_id"] == "t" and data["run_id"].startswith("sched_t_")
    run = peek(local, "runs", "status", data["run_id"])
    assert run["status"] == "completed" and run["result"] == "tick:scheduled"
    shown = peek(local, "schedules", "show", "t")
    assert shown["total_runs"] == 1 and shown["last_run_id"] == data["run_id"]
    assert "Triggered schedule t" in local("schedules", "trigger", "t")
    assert peek(local, "schedules", "show", "t")["total_runs"] == 2


def test_backfill_one_run_per_slot(cli: Cli, local: Any) -> None:
    local("schedules", "create", "sched_app_tick", "--interval", "1m", "--schedule-id", "bf")
    window = ("--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:05:00")
    data = cli.json("schedules", "backfill", "bf", *window)
    assert set(data) == {"schedule_id", "start_time", "end_time", "runs_created", "run_ids"}
    assert data["start_time"] == "2026-01-01T00:00:00+00:00"  # naive means UTC
    assert data["runs_created"] == 5 and len(set(data["run_ids"])) == 5
    runs = peek(local, "runs", "list", "--limit", "100")
    assert {r["run_id"]: r["status"] for r in runs} == dict.fromkeys(data["run_ids"], "completed")

    # The same slots again start nothing new.
    assert peek(local, "schedules", "backfill", "bf", *window)["run_ids"] == data["run_ids"]
    assert len(peek(local, "runs", "list", "--limit", "100")) == 5
    zulu = ("--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T00:02:30+00:00")
    plain = local("--output", "plain", "schedules", "backfill", "bf", *zulu)
    assert plain.split() == data["run_ids"][:3]
    backfill = ("schedules", "backfill", "bf")
    assert "must be before --end" in local(*backfill, "--start", "2026-01-02",
                                           "--end", "2026-01-01", code=1)  # fmt: skip
    bad = local(*backfill, "--start", "yesterday", "--end", "2026-01-01", code=1)
    assert "not an ISO 8601 time: 'yesterday'" in bad
    assert "--end" in local(*backfill, "--start", "2026-01-01", code=2)
    assert len(peek(local, "runs", "list", "--limit", "100")) == 5


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nope"],
        ["pause", "nope"],
        ["resume", "nope"],
        ["delete", "nope", "--force"],
        ["trigger", "nope"],
        ["backfill", "nope", "--start", "2026-01-01", "--end", "2026-01-02"],
        ["update", "nope", "--interval", "5m"],
    ],
    ids=lambda a: a[0],
)
def test_missing_schedule(local: Any, args: list[str]) -> None:
    assert "Error: Schedule not found: nope" in local("schedules", *args, code=1)


def test_missing_schedule_subprocess(cli: Cli) -> None:
    assert "Schedule not found: nope" in cli.fails("--output", "json", "schedules", "show", "nope")


def test_trigger_of_a_workflow_not_imported(cli: Cli, local: Any) -> None:
    local("schedules", "create", "sched_app_tick", "--interval", "1h", "--schedule-id", "x")
    argv = cli.argv("schedules", "trigger", "x")
    del argv[3:5]  # no --module
    done = subprocess.run(argv, cwd=cli.cwd, env=cli_env(), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert "Workflow 'sched_app_tick' is not registered" in done.stderr
    assert peek(local, "schedules", "show", "x")["total_runs"] == 0
