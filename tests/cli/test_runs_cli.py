"""``pyworkflow --version`` and ``pyworkflow runs list|status|logs`` on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyworkflow import start, step, workflow
from pyworkflow.cli import main
from pyworkflow.storage.sqlite import SQLiteStorageBackend


@pytest.fixture
def db_with_run(tmp_path: Path) -> tuple[str, str]:
    db = str(tmp_path / "cli.db")

    # Defined here, not at import: other tests clear the global registry.
    @step(name="cli_double")
    async def cli_double(x: int) -> int:
        return 2 * x

    @workflow(name="cli_wf")
    async def cli_wf(x: int) -> int:
        return await cli_double(x)

    async def setup() -> str:
        store = SQLiteStorageBackend(db)
        await store.connect()
        run_id = await start(cli_wf, 21, durable=True, storage=store)
        await store.disconnect()
        return run_id

    # The CLI runs its own event loop, so the tests around it are synchronous.
    return db, asyncio.run(setup())


def invoke(db: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--storage", "sqlite", "--storage-path", db, *args])
    return result.exit_code, result.output


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pyworkflow.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "pyworkflow, version 0.1.10"


def test_runs_list_json_keys(db_with_run: tuple[str, str]) -> None:
    db, run_id = db_with_run
    code, out = invoke(db, "--output", "json", "runs", "list")
    assert code == 0
    (row,) = json.loads(out)
    assert set(row) == {
        "run_id",
        "workflow_name",
        "status",
        "created_at",
        "started_at",
        "completed_at",
        "duration",
    }
    assert row["run_id"] == run_id and row["status"] == "completed"


def test_runs_status_decodes_fields(db_with_run: tuple[str, str]) -> None:
    db, run_id = db_with_run
    code, out = invoke(db, "--output", "json", "runs", "status", run_id)
    assert code == 0
    data = json.loads(out)
    assert data["result"] == 42 and data["input_args"] == [21]
    assert set(data) >= {
        "run_id",
        "workflow_name",
        "status",
        "input_args",
        "input_kwargs",
        "result",
        "error",
        "context",
        "duration",
    }


def test_runs_logs_filter_and_plain(db_with_run: tuple[str, str]) -> None:
    db, run_id = db_with_run
    code, out = invoke(db, "--output", "plain", "runs", "logs", run_id)
    assert code == 0
    assert out.splitlines() == [
        "0: workflow.started",
        "1: step.started",
        "2: step.completed",
        "3: workflow.completed",
    ]
    code, out = invoke(db, "--output", "json", "runs", "logs", run_id, "--filter", "STEP.")
    events = json.loads(out)
    assert [e["type"] for e in events] == ["step.started", "step.completed"]
    assert set(events[0]) == {"event_id", "sequence", "type", "timestamp", "data"}


def test_unknown_run_is_a_clear_error(db_with_run: tuple[str, str]) -> None:
    db, _ = db_with_run
    code, out = invoke(db, "runs", "status", "run_missing")
    assert code == 1 and "Workflow run not found: run_missing" in out
