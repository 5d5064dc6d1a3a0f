"""``pyworkflow runs list|status|logs|cancel|children|chain`` on real SQLite files.

Runs are made in-process with real workflows (tests/cli/runs_app.py); the CLI runs as a
real subprocess (``python -m pyworkflow.cli``) reading the same file, plus a few
CliRunner calls for quick table checks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pyworkflow import resume_hook, start
from pyworkflow.cli import main
from pyworkflow.storage.schemas import RunStatus, WorkflowRun
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.cli import runs_app
from tests.support import wait_until

HERE = Path(__file__).resolve().parent
SUMMARY = {"run_id", "workflow_name", "status", "created_at", "started_at", "completed_at"}
SUMMARY |= {"duration"}


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: no PYWORKFLOW_* leaking in, runs_app importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parents[1])])
    return env


def cli_args(db: str, *args: str, output: str = "json") -> list[str]:
    base = [sys.executable, "-m", "pyworkflow.cli", "--storage", "sqlite"]
    return [*base, "--storage-path", db, "--output", output, *args]


def cli(
    db: str, *args: str, output: str = "json", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_args(db, *args, output=output),
        capture_output=True,
        text=True,
        cwd=cwd or Path(db).parent,
        env=cli_env(),
        timeout=60,
    )


def cli_json(db: str, *args: str) -> Any:
    done = cli(db, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def invoke(db: str, *args: str) -> tuple[int, str]:
    runner = CliRunner(env={"COLUMNS": "200"})  # wide: table cells on one line
    result = runner.invoke(main, ["--storage", "sqlite", "--storage-path", db, *args])
    return result.exit_code, result.output


def invoke_json(db: str, *args: str) -> Any:
    code, out = invoke(db, "--output", "json", *args)
    assert code == 0, out
    return json.loads(out)


def make(db: str, action: Any) -> Any:
    """Run ``action(store)`` against the SQLite file in a fresh event loop."""

    async def go() -> Any:
        store = SQLiteStorageBackend(db)
        await store.connect()
        try:
            return await action(store)
        finally:
            await store.disconnect()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One SQLite file with a finished tour run (and its child) and a 3-run chain."""
    db = str(tmp_path_factory.mktemp("runs_cli") / "runs.db")

    async def build(store: SQLiteStorageBackend) -> dict[str, str]:
        tour = await runs_app.run_tour(store)
        (child,) = await store.get_children(tour)
        first = await start(runs_app.loop, 0, durable=True, storage=store)
        chain = [r.run_id for r in await store.get_workflow_chain(first)]
        return {
            "tour": tour,
            "child": child.run_id,
            "first": chain[0],
            "middle": chain[1],
            "last": chain[2],
        }

    return {"db": db, **make(db, build)}


# ------------------------------------------------------------------------- list


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pyworkflow.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "pyworkflow, version 0.1.10"


def test_list_json_keys_and_filters(world: dict[str, str]) -> None:
    db = world["db"]
    rows = cli_json(db, "runs", "list")
    assert len(rows) == 5 and all(set(r) == SUMMARY for r in rows)
    by_id = {r["run_id"]: r for r in rows}
    assert by_id[world["tour"]]["status"] == "completed"
    assert by_id[world["tour"]]["duration"] > 0
    assert [r["run_id"] for r in invoke_json(db, "runs", "list", "-q", "TOUR")] == [world["tour"]]
    chained = invoke_json(db, "runs", "list", "--status", "CONTINUED_AS_NEW")
    assert {r["run_id"] for r in chained} == {world["first"], world["middle"]}
    assert len(invoke_json(db, "runs", "list", "--limit", "2")) == 2
    assert invoke_json(db, "runs", "list", "--start-time", "2999-01-01") == []
    assert len(invoke_json(db, "runs", "list", "--end-time", "2999-01-01T00:00:00+00:00")) == 5


def test_list_time_window_on_created_at(world: dict[str, str]) -> None:
    db = world["db"]
    rows = invoke_json(db, "runs", "list")
    tour = next(r for r in rows if r["run_id"] == world["tour"])
    since = tour["created_at"][:19]  # naive text: read as UTC, and seconds are truncated
    after = {r["run_id"] for r in invoke_json(db, "runs", "list", "--start-time", since)}
    assert world["tour"] in after and world["last"] in after
    before = invoke_json(db, "runs", "list", "--end-time", since)
    assert world["tour"] not in {r["run_id"] for r in before}


def test_list_plain_and_table(world: dict[str, str]) -> None:
    done = cli(world["db"], "runs", "list", "--status", "completed", output="plain")
    assert done.returncode == 0
    assert set(done.stdout.split()) == {world["tour"], world["child"], world["last"]}
    code, out = invoke(world["db"], "runs", "list", "-q", "runs_app_tour")
    assert code == 0 and "runs_app_tour" in out and "completed" in out and "Run ID" in out
    code, out = invoke(world["db"], "runs", "list", "-q", "no-such-workflow")
    assert (code, out.strip()) == (0, "No runs found.")
    code, out = invoke(world["db"], "--output", "json", "runs", "list", "-q", "nothing")
    assert json.loads(out) == []


def test_list_rejects_a_bad_status(world: dict[str, str]) -> None:
    done = cli(world["db"], "runs", "list", "--status", "sleeping")
    assert done.returncode == 2 and "'sleeping' is not one of" in done.stderr


# ----------------------------------------------------------------------- status


def test_status_decodes_fields(world: dict[str, str]) -> None:
    data = cli_json(world["db"], "runs", "status", world["tour"])
    assert set(data) == SUMMARY | {
        "input_args",
        "input_kwargs",
        "result",
        "error",
        "context",
    }
    assert data["input_args"] == [3] and data["input_kwargs"] == {}
    assert data["result"] == {"a": 6, "b": 7, "c": 14, "approval": {"ok": True}}
    assert data["error"] is None and data["status"] == "completed"
    code, out = invoke(world["db"], "runs", "status", world["tour"])
    assert code == 0 and "result" in out and '"approval": {"ok": true}' in out
    code, out = invoke(world["db"], "--output", "plain", "runs", "status", world["tour"])
    assert (code, out.strip()) == (0, "completed")


class _Touch:
    """Unpickling this creates a file: the proof that the CLI never unpickles."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_status_never_unpickles(tmp_path: Path) -> None:
    db = str(tmp_path / "pickle.db")
    canary = tmp_path / "unpickled"
    value = base64.b64encode(pickle.dumps(_Touch(str(canary)))).decode()
    stored = json.dumps({"__type__": "cloudpickle", "value": value})

    async def plant(store: SQLiteStorageBackend) -> None:
        run = WorkflowRun(
            run_id="run_pickled",
            workflow_name="someone_elses",
            status=RunStatus.COMPLETED,
            input_args="[1]",
            result=stored,
        )
        await store.create_run(run)

    make(db, plant)
    data = cli_json(db, "runs", "status", "run_pickled")
    assert data["result"] == stored and data["input_args"] == [1]
    assert not canary.exists()


# ------------------------------------------------------------------------- logs


def test_logs_json_plain_and_filter(world: dict[str, str]) -> None:
    db, tour = world["db"], world["tour"]
    events = cli_json(db, "runs", "logs", tour)
    assert all(set(e) == {"event_id", "sequence", "type", "timestamp", "data"} for e in events)
    assert [e["sequence"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[0] == "workflow.started" and types[-1] == "workflow.completed"
    assert {"step.failed", "step.retrying", "sleep.started", "hook.received"} <= set(types)
    filtered = invoke_json(db, "runs", "logs", tour, "--filter", "HOOK.")
    assert [e["type"] for e in filtered] == ["hook.created", "hook.received"]
    assert invoke_json(db, "runs", "logs", tour, "--filter", "hook_created") == []
    code, out = invoke(db, "--output", "plain", "runs", "logs", world["last"])
    assert code == 0
    assert out.splitlines() == ["0: workflow.started", "1: workflow.completed"]


def test_logs_table(world: dict[str, str]) -> None:
    code, out = invoke(world["db"], "runs", "logs", world["tour"], "--filter", "step.")
    assert code == 0
    assert "step.retrying" in out and "ValueError: first try fails" in out
    assert "workflow.started" not in out


class Follower:
    """A ``runs logs --follow`` subprocess whose stdout lines are collected as they come."""

    def __init__(self, db: str, run_id: str, output: str) -> None:
        self.proc = subprocess.Popen(
            cli_args(db, "runs", "logs", run_id, "--follow", output=output),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(db).parent,
            env=cli_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def has(self, text: str) -> bool:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return any(text in line for line in self.seen)

    def finish(self, timeout: float = 30) -> tuple[int, list[str], str]:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout)  # the pipe is closed: the reader has all lines
        self.has("")
        assert self.proc.stderr is not None
        return code, self.seen, self.proc.stderr.read()


@pytest.fixture
def follower_cleanup() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for follower in started:
        if follower.proc.poll() is None:
            follower.proc.kill()
            follower.proc.wait()


def test_logs_follow_streams_until_the_run_ends(
    tmp_path: Path, follower_cleanup: list[Follower]
) -> None:
    db = str(tmp_path / "follow.db")
    run_id = make(db, lambda store: start(runs_app.waiter, durable=True, storage=store))
    follower = Follower(db, run_id, "json")
    follower_cleanup.append(follower)
    wait_until(lambda: follower.has('"hook.created"'), timeout=30)

    async def go(store: SQLiteStorageBackend) -> None:
        token = await runs_app.pending_hook_token(store, run_id)
        await resume_hook(token, {"n": 21}, storage=store)
        assert await runs_app.ended(store, run_id) is RunStatus.COMPLETED

    make(db, go)
    code, lines, stderr = follower.finish()
    assert code == 0, stderr
    events = [json.loads(line) for line in lines]  # JSON Lines: one object per line
    assert all(set(e) == {"event_id", "sequence", "type", "timestamp", "data"} for e in events)
    types = [e["type"] for e in events]
    assert types[:2] == ["workflow.started", "hook.created"]
    assert types[-1] == "workflow.completed"
    assert {"hook.received", "step.completed"} <= set(types)
    assert [e["sequence"] for e in events] == list(range(len(events)))


def test_logs_follow_ctrl_c_exits_130(tmp_path: Path, follower_cleanup: list[Follower]) -> None:
    db = str(tmp_path / "interrupt.db")
    run_id = make(db, lambda store: start(runs_app.napper, durable=True, storage=store))
    follower = Follower(db, run_id, "table")
    follower_cleanup.append(follower)
    wait_until(lambda: follower.has("sleep.started"), timeout=30)
    follower.proc.send_signal(signal.SIGINT)
    code, _, stderr = follower.finish()
    assert code == 130 and "Traceback" not in stderr


# ----------------------------------------------------------------------- cancel


def test_cancel_a_sleeping_run_and_wait(tmp_path: Path) -> None:
    db = str(tmp_path / "cancel.db")
    run_id = make(db, lambda store: start(runs_app.napper, durable=True, storage=store))
    done = cli(
        db, "--module", "runs_app", "runs", "cancel", run_id, "--wait", "--reason", "not needed"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"run_id": run_id, "cancelled": True, "status": "cancelled"}

    async def check(store: SQLiteStorageBackend) -> list[Any]:
        run = await store.get_run(run_id)
        assert run is not None and run.status is RunStatus.CANCELLED
        return [
            e.data.get("reason") for e in await store.get_events(run_id, ["cancellation.requested"])
        ]

    assert make(db, check) == ["not needed"]


def test_cancel_without_the_code_in_table_mode(tmp_path: Path) -> None:
    # No --module: the CLI cannot run the workflow's code, so the run just ends CANCELLED.
    db = str(tmp_path / "cancel_table.db")
    run_id = make(db, lambda store: start(runs_app.napper, durable=True, storage=store))
    done = cli(db, "runs", "cancel", run_id, output="table")
    assert done.returncode == 0, done.stderr
    assert f"Cancellation requested for {run_id} (status: cancelled)" in done.stdout
    run = make(db, lambda store: store.get_run(run_id))
    assert run.status is RunStatus.CANCELLED


def test_cancel_a_finished_run_warns_and_exits_0(world: dict[str, str]) -> None:
    done = cli(world["db"], "runs", "cancel", world["tour"])
    assert done.returncode == 0
    assert "already completed" in done.stderr
    assert json.loads(done.stdout) == {
        "run_id": world["tour"],
        "cancelled": False,
        "status": "completed",
    }


# --------------------------------------------------------------- children, chain


def test_children(world: dict[str, str]) -> None:
    db = world["db"]
    (kid,) = cli_json(db, "runs", "children", world["tour"])
    assert set(kid) == SUMMARY | {"nesting_depth", "parent_run_id"}
    assert kid["run_id"] == world["child"] and kid["nesting_depth"] == 1
    assert kid["parent_run_id"] == world["tour"] and kid["workflow_name"] == "runs_app_kid"
    assert invoke_json(db, "runs", "children", world["tour"], "--status", "failed") == []
    assert invoke_json(db, "runs", "children", world["child"]) == []
    code, out = invoke(db, "runs", "children", world["child"])
    assert (code, out.strip()) == (0, "No child runs found.")


def test_chain(world: dict[str, str]) -> None:
    db = world["db"]
    rows = cli_json(db, "runs", "chain", world["middle"])
    assert [r["run_id"] for r in rows] == [world["first"], world["middle"], world["last"]]
    assert all(set(r) == SUMMARY | {"continued_from_run_id", "continued_to_run_id"} for r in rows)
    assert [r["status"] for r in rows] == ["continued_as_new", "continued_as_new", "completed"]
    assert rows[0]["continued_from_run_id"] is None
    assert rows[1]["continued_from_run_id"] == world["first"]
    assert rows[1]["continued_to_run_id"] == world["last"]
    code, out = invoke(db, "runs", "chain", world["last"])
    marked = [line for line in out.splitlines() if "→" in line]
    assert code == 0 and len(marked) == 1 and "completed" in marked[0]
    code, out = invoke(db, "--output", "plain", "runs", "chain", world["first"])
    assert code == 0
    assert out.split() == [world["first"], world["middle"], world["last"]]


# ----------------------------------------------------------------------- errors


@pytest.mark.parametrize("command", ["status", "logs", "cancel", "children", "chain", "timeline"])
def test_unknown_run_is_a_clear_error(world: dict[str, str], command: str) -> None:
    code, out = invoke(world["db"], "runs", command, "run_missing")
    assert code == 1 and "Workflow run not found: run_missing" in out


def test_unknown_run_in_a_subprocess(world: dict[str, str]) -> None:
    done = cli(world["db"], "runs", "cancel", "run_missing", "--wait")
    assert done.returncode == 1
    assert "Workflow run not found: run_missing" in done.stderr and done.stdout == ""
