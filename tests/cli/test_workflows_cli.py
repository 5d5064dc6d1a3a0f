"""``pyworkflow workflows list|info|run`` as real subprocesses on a real SQLite file.

The workflows live in ``tests/cli/workflows_app.py``, imported by ``--module workflows_app``
with this directory on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import resume
from pyworkflow.cli.run_watch import EventTracker, hook_hint
from pyworkflow.cli.workflows import parse_arguments, parse_value
from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.support import eventually

APP_DIR = Path(__file__).resolve().parent
REPO = APP_DIR.parent.parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(APP_DIR), str(REPO)])
    return env


def cli(
    tmp_path: Path, *args: str, module: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``pyworkflow --storage sqlite --storage-path <tmp>/db [--module workflows_app] ...``."""
    root = ["--storage", "sqlite", "--storage-path", str(tmp_path / "db")]
    if module:
        root += ["--module", "workflows_app"]
    return subprocess.run(
        [sys.executable, "-m", "pyworkflow.cli", *root, *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=45,
        **{"stdin": subprocess.DEVNULL, **kwargs},
    )


def cli_json(tmp_path: Path, *args: str) -> Any:
    out = cli(tmp_path, "--output", "json", *args)
    assert out.returncode == 0, out.stderr
    if "--debug" in args:
        assert "DEBUG" in out.stderr  # pyworkflow's logs, on stderr only
    return json.loads(out.stdout)


def runs_in_storage(tmp_path: Path) -> list[Any]:
    out = cli(tmp_path, "--output", "json", "runs", "list")
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)
    assert isinstance(runs, list)
    return runs


# ----------------------------------------------------------------------------- list / info


def test_list_json_table_and_plain(tmp_path: Path) -> None:
    items = cli_json(tmp_path, "workflows", "list")
    by_name = {item["name"]: item for item in items}
    assert sorted(by_name) == ["app_approval", "app_boom", "app_compute", "app_nap"]
    assert all(set(item) == {"name", "max_duration", "tags"} for item in items)
    assert by_name["app_compute"] == {
        "name": "app_compute",
        "max_duration": "1h",
        "tags": ["demo", "math"],
    }
    assert by_name["app_nap"]["max_duration"] == "None"  # upstream's form for "unset"
    assert by_name["app_nap"]["tags"] == []

    table = cli(tmp_path, "workflows", "list")
    assert table.returncode == 0, table.stderr
    assert "app_compute" in table.stdout and "demo, math" in table.stdout
    assert "Sleep one second, then answer." in table.stdout
    assert "Second line" not in table.stdout  # only the first docstring line

    plain = cli(tmp_path, "--output", "plain", "workflows", "list")
    assert plain.stdout.split() == ["app_approval", "app_boom", "app_compute", "app_nap"]


def test_list_without_modules_explains_how_to_point_at_them(tmp_path: Path) -> None:
    table = cli(tmp_path, "workflows", "list", module=False)
    assert table.returncode == 0
    assert "No workflows found" in table.stdout
    assert "--module" in table.stdout and "PYWORKFLOW_MODULE" in table.stdout
    assert "pyworkflow.config.yaml" in table.stdout

    as_json = cli(tmp_path, "--output", "json", "workflows", "list", module=False)
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == []


def test_info_json_and_table(tmp_path: Path) -> None:
    info = cli_json(tmp_path, "workflows", "info", "app_compute")
    assert set(info) == {"name", "max_duration", "tags", "function", "parameters"}
    assert info["name"] == "app_compute"
    assert info["function"]["name"] == "compute"
    assert info["function"]["module"] == "workflows_app"
    assert info["function"]["doc"].startswith("Double x in a step")
    assert info["parameters"] == [
        {"name": "x", "default": None, "annotation": "int", "required": True},
        {"name": "label", "default": "total", "annotation": "str", "required": False},
    ]

    table = cli(tmp_path, "workflows", "info", "app_compute")
    assert table.returncode == 0, table.stderr
    assert "workflows_app.compute" in table.stdout and "label" in table.stdout


def test_info_unknown_workflow_names_the_registered_ones(tmp_path: Path) -> None:
    out = cli(tmp_path, "workflows", "info", "nope")
    assert out.returncode == 1
    assert "Workflow 'nope' not found. Registered: app_approval, app_boom" in out.stderr

    none = cli(tmp_path, "workflows", "info", "nope", module=False)
    assert none.returncode == 1
    assert "not found" in none.stderr and "--module" in none.stderr


# ----------------------------------------------------------------------------- run


def test_run_with_steps_prints_the_result(tmp_path: Path) -> None:
    out = cli(tmp_path, "workflows", "run", "app_compute", "--arg", "x=21")
    assert out.returncode == 0, out.stderr
    assert '{"total": 42}' in out.stdout
    assert "completed" in out.stdout

    (run,) = runs_in_storage(tmp_path)
    assert run["workflow_name"] == "app_compute" and run["status"] == "completed"


def test_run_args_json_and_arg_override(tmp_path: Path) -> None:
    data = cli_json(
        tmp_path,
        "workflows",
        "run",
        "app_compute",
        "--args-json",
        '{"x": 1, "label": "sum"}',
        "--arg",
        "x=5",
        "--wait",
        "--debug",
    )
    assert data["status"] == "completed"
    assert data["result"] == {"sum": 10}
    assert data["error"] is None


def test_run_waits_through_a_sleep(tmp_path: Path) -> None:
    out = cli(tmp_path, "workflows", "run", "app_nap", "--arg", "x=7")
    assert out.returncode == 0, out.stderr
    assert "rested 7" in out.stdout
    # Not a terminal: progress goes to stderr as plain lines, never into stdout.
    assert "sleeping until" in out.stderr
    assert "sleeping until" not in out.stdout


def test_run_no_wait_leaves_a_resumable_suspended_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = cli(tmp_path, "--output", "plain", "workflows", "run", "app_nap", "--no-wait")
    assert out.returncode == 0, out.stderr
    run_id, status = out.stdout.split()
    assert status == "suspended"

    # The run is durable: another process (here, this one) finishes it once the sleep is due.
    monkeypatch.syspath_prepend(str(APP_DIR))
    sys.modules.pop("workflows_app", None)
    importlib.import_module("workflows_app")

    async def finish() -> Any:
        store = SQLiteStorageBackend(str(tmp_path / "db"))
        await store.connect()
        try:
            return await eventually(lambda: resume(run_id, storage=store), timeout=20, interval=0.2)
        finally:
            await store.disconnect()

    assert asyncio.run(finish()) == "rested 1"


def test_run_json_keys_without_and_with_wait(tmp_path: Path) -> None:
    started = cli_json(tmp_path, "workflows", "run", "app_nap")
    assert set(started) == {"run_id", "workflow_name", "runtime", "status"}
    assert started["workflow_name"] == "app_nap"
    assert started["runtime"] == "local"
    assert started["status"] == "suspended"

    # The local runtime runs a step-only workflow to its end inside start().
    done = cli_json(tmp_path, "workflows", "run", "app_compute", "--arg", "x=2")
    assert set(done) == {"run_id", "workflow_name", "runtime", "status", "result", "error"}
    assert done["result"] == {"total": 4}


def test_idempotency_key_returns_the_same_run(tmp_path: Path) -> None:
    args = ("workflows", "run", "app_compute", "--arg", "x=3", "--idempotency-key", "order-7")
    first = cli_json(tmp_path, *args)
    second = cli_json(tmp_path, *args)
    assert first["run_id"] == second["run_id"]
    assert second["result"] == {"total": 6}
    assert len(runs_in_storage(tmp_path)) == 1


def test_failing_workflow_exits_1_with_its_error(tmp_path: Path) -> None:
    out = cli(tmp_path, "workflows", "run", "app_boom", "--arg", "reason=no stock")
    assert out.returncode == 1
    assert "failed: boom: no stock" in out.stderr
    assert "Traceback" not in out.stderr

    as_json = cli(tmp_path, "--output", "json", "workflows", "run", "app_boom")
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["status"] == "failed" and data["error"] == "boom: kaboom"
    assert data["run_id"].startswith("run_")


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    out = cli(tmp_path, "-v", "workflows", "run", "app_boom")
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr
    assert "ValueError: boom: kaboom" in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("app_compute", "--arg", "x"), "Invalid --arg 'x': expected KEY=VALUE"),
        (("app_compute", "--args-json", "[1, 2]"), "--args-json must be a JSON object"),
        (("app_compute", "--args-json", "{x"), "--args-json is not valid JSON"),
        (("nope",), "Workflow 'nope' not found. Registered: app_approval"),
        (("app_compute",), "Missing required argument(s) for workflow 'app_compute': x"),
        (("app_compute", "--arg", "x=1", "--arg", "y=2"), "Unknown argument(s)"),
        ((), "Missing workflow name. Registered workflows: app_approval, app_boom"),
        (("app_compute", "--arg", "x=1", "--no-durable", "--idempotency-key", "k"), "durable"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = cli(tmp_path, "workflows", "run", *args)
    assert out.returncode != 0
    assert message in out.stderr
    assert out.stdout == ""
    # Checked before anything is started: the storage was not even opened.
    assert not (tmp_path / "db").exists()


def test_rejected_run_leaves_no_run_behind(tmp_path: Path) -> None:
    assert runs_in_storage(tmp_path) == []  # an empty database, created by `runs list`
    out = cli(tmp_path, "workflows", "run", "app_compute", "--arg", "y=1")
    assert out.returncode == 1
    assert runs_in_storage(tmp_path) == []


def test_celery_runtime_refuses_no_durable(tmp_path: Path) -> None:
    out = cli(tmp_path, "--runtime", "celery", "workflows", "run", "app_compute", "--no-durable")
    assert out.returncode == 1
    assert "celery runtime runs durable workflows only" in out.stderr


def test_transient_run_stores_nothing(tmp_path: Path) -> None:
    out = cli(tmp_path, "workflows", "run", "app_compute", "--arg", "x=1", "--no-durable")
    assert out.returncode == 0, out.stderr
    assert "completed" in out.stdout and "Transient run" in out.stdout
    assert runs_in_storage(tmp_path) == []


def test_timeout_stops_watching_a_hook_and_hints_how_to_resume(tmp_path: Path) -> None:
    out = cli(tmp_path, "--output", "json", "workflows", "run", "app_approval", "--timeout", "1")
    assert out.returncode == 124
    data = json.loads(out.stdout)
    assert data["status"] == "suspended"
    assert f"pyworkflow hooks list --run-id {data['run_id']}" in out.stderr
    assert out.stderr.count("is waiting for hook 'approval'") == 1
    assert f"Stopped watching run {data['run_id']}" in out.stderr


def test_ctrl_c_stops_watching_and_leaves_the_run(tmp_path: Path) -> None:
    root = ["--storage", "sqlite", "--storage-path", str(tmp_path / "db")]
    command = ["workflows", "run", "app_approval"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyworkflow.cli", *root, "--module", "workflows_app", *command],
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        seen = []
        for line in proc.stderr:  # the watcher says when the run waits on the hook
            seen.append(line)
            if "waiting for hook" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, "".join(seen) + rest
    assert "Stopped watching run run_" in rest and "(still suspended)" in rest
    (run,) = runs_in_storage(tmp_path)
    assert run["status"] == "suspended"


def test_interactive_pick_list_and_prompts(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"3\n5\n")  # app_compute, then x = 5
        out = cli(tmp_path, "workflows", "run", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert out.returncode == 0, out.stderr
    assert "3. app_compute" in out.stderr
    assert '{"total": 10}' in out.stdout


# ----------------------------------------------------------------------------- helpers


def test_argument_parsing_is_json_never_pickle() -> None:
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("ada") == "ada"
    assert parse_value('"42"') == "42"
    tagged = '{"__type__": "cloudpickle", "value": "gASV"}'
    assert parse_value(tagged) == {"__type__": "cloudpickle", "value": "gASV"}
    assert parse_arguments(("a=1", "b=x=y"), None) == {"a": 1, "b": "x=y"}


def test_event_descriptions() -> None:
    tracker = EventTracker()

    def add(kind: EventType, **data: Any) -> str:
        tracker.add(Event(run_id="run_1", type=kind, sequence=tracker.last_sequence + 1, data=data))
        return tracker.latest

    assert add(EventType.WORKFLOW_STARTED) == "started"
    assert add(EventType.STEP_STARTED, step_id="s1", step_name="charge") == "step charge running"
    assert add(EventType.STEP_FAILED, step_id="s1", error="card declined").startswith(
        "step charge failed: card declined"
    )
    assert add(EventType.STEP_RETRYING, step_id="s1", attempt=2) == (
        "step charge will retry (attempt 2)"
    )
    assert add(EventType.STEP_COMPLETED, step_id="s1", step_name="charge") == (
        "step charge completed"
    )
    assert add(EventType.SLEEP_STARTED, resume_at="2026-01-02T12:00:03+00:00").startswith(
        "sleeping until "
    )
    assert add(EventType.HOOK_CREATED, hook_id="h1", name="approval") == (
        "waiting for hook approval"
    )
    assert tracker.pending_hooks() == ["approval"]
    add(EventType.HOOK_RECEIVED, hook_id="h1")
    assert tracker.pending_hooks() == []
    assert tracker.last_sequence == 7
    assert "pyworkflow hooks resume <token>" in hook_hint("run_1", ["approval"])
