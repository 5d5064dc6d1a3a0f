"""``pyworkflow hooks list|info|run|resume`` against a real SQLite file.

Runs are started in this process (they suspend on their hook); the CLI is then run as a
real subprocess with ``--module hooks_app``, as a user would, and its JSON checked.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from pyworkflow import get_workflow_result, resume, start
from pyworkflow.cli import main
from pyworkflow.core.registry import get_workflow
from pyworkflow.storage.schemas import HookStatus
from pyworkflow.storage.sqlite import SQLiteStorageBackend

HERE = Path(__file__).resolve().parent
SUMMARY_KEYS = {
    "token",
    "hook_id",
    "run_id",
    "name",
    "status",
    "created_at",
    "expires_at",
    "has_schema",
}
GOOD = {"approved": True, "reviewer": "ada", "score": 7}


@pytest.fixture
def app() -> ModuleType:
    """tests/cli/hooks_app.py imported as ``hooks_app``, as the subprocesses import it."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module = importlib.import_module("hooks_app")
    if get_workflow("hooks_cli_approval") is None:  # another test cleared the registry
        module = importlib.reload(module)
    return module


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "hooks.db")


def start_waiting(db: str, wf: Any, *args: Any) -> tuple[str, str]:
    """Start ``wf`` durably; it suspends on its hook. Returns (run_id, token)."""

    async def go() -> tuple[str, str]:
        store = SQLiteStorageBackend(db)
        await store.connect()
        try:
            run_id = await start(wf, *args, durable=True, storage=store)
            (waiting,) = await store.list_hooks(run_id=run_id)
            return run_id, waiting.token
        finally:
            await store.disconnect()

    return asyncio.run(go())


def on_store(db: str, action: Any) -> Any:
    async def go() -> Any:
        store = SQLiteStorageBackend(db)
        await store.connect()
        try:
            return await action(store)
        finally:
            await store.disconnect()

    return asyncio.run(go())


def event_types(db: str, run_id: str) -> list[str]:
    return [e.type.value for e in on_store(db, lambda s: s.get_events(run_id))]


def cli_env(*, with_app: bool = True, columns: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYTHONPATH"] = str(HERE) if with_app else ""
    env.pop("COLUMNS", None)
    if columns:
        env["COLUMNS"] = str(columns)
    return env


def cli(
    tmp_path: Path,
    db: str,
    *args: str,
    module: bool = True,
    stdin: str | None = None,
    columns: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m pyworkflow.cli`` on the test's SQLite file, in ``tmp_path``."""
    cmd = [sys.executable, "-m", "pyworkflow.cli", "--storage", "sqlite", "--storage-path", db]
    if module:
        cmd += ["--module", "hooks_app"]
    return subprocess.run(
        [*cmd, *args],
        cwd=tmp_path,
        env=cli_env(with_app=module, columns=columns),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def invoke(db: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["--storage", "sqlite", "--storage-path", db, *args], input=stdin
    )
    return result.exit_code, result.output


# ------------------------------------------------------------------ list / info / run


def test_list_shows_waiting_hooks(tmp_path: Path, db: str, app: ModuleType) -> None:
    typed_run, typed_token = start_waiting(db, app.approval_flow, "RFC-1")
    plain_run, plain_token = start_waiting(db, app.untyped_flow)

    rows = as_json(cli(tmp_path, db, "--output", "json", "hooks", "list"))
    assert [set(r) for r in rows] == [SUMMARY_KEYS, SUMMARY_KEYS]
    by_name = {r["name"]: r for r in rows}
    assert by_name["approval"] == by_name["approval"] | {
        "token": typed_token,
        "hook_id": "hook_approval_1",
        "run_id": typed_run,
        "status": "pending",
        "expires_at": None,
        "has_schema": True,
    }
    assert by_name["signal"]["has_schema"] is False and by_name["signal"]["run_id"] == plain_run
    assert [r["name"] for r in rows] == ["signal", "approval"]  # newest first

    plain = cli(tmp_path, db, "--output", "plain", "hooks", "list")
    assert plain.returncode == 0 and plain.stdout.split() == [plain_token, typed_token]

    wide = cli(tmp_path, db, "hooks", "list", columns=200)
    assert wide.returncode == 0 and "Token" in wide.stdout and "Schema" in wide.stdout
    assert typed_token in wide.stdout and "pending" in wide.stdout
    narrow = cli(tmp_path, db, "hooks", "list", columns=60)
    # Never folded: each token can be copied from one line.
    assert f"  {typed_token}" in narrow.stdout.splitlines()


def test_list_filters(db: str, app: ModuleType) -> None:
    typed_run, _ = start_waiting(db, app.approval_flow, "RFC-1")
    start_waiting(db, app.untyped_flow)
    code, out = invoke(db, "--output", "json", "hooks", "list", "--run-id", typed_run)
    assert code == 0 and [r["name"] for r in json.loads(out)] == ["approval"]
    code, out = invoke(db, "--output", "json", "hooks", "list", "--status", "received")
    assert code == 0 and json.loads(out) == []
    code, out = invoke(db, "--output", "json", "hooks", "list", "--limit", "1")
    assert code == 0 and len(json.loads(out)) == 1
    code, out = invoke(db, "hooks", "list", "--status", "received")
    assert code == 0 and "No hooks found." in out
    code, out = invoke(db, "hooks", "list", "--status", "waiting")
    assert code == 2 and "'waiting' is not one of" in out


def test_info_and_run(tmp_path: Path, db: str, app: ModuleType) -> None:
    run_id, token = start_waiting(db, app.approval_flow, "RFC-1")

    data = as_json(cli(tmp_path, db, "--output", "json", "hooks", "info", token))
    assert set(data) == SUMMARY_KEYS | {"received_at", "payload", "payload_schema"}
    assert data["token"] == token and data["status"] == "pending"
    assert data["payload"] is None and data["received_at"] is None
    schema = data["payload_schema"]
    assert schema["required"] == ["approved", "reviewer"]
    assert schema["properties"]["approved"]["type"] == "boolean"

    table = cli(tmp_path, db, "hooks", "info", token)
    assert table.returncode == 0 and token in table.stdout and "payload_schema" in table.stdout

    listing = as_json(cli(tmp_path, db, "--output", "json", "hooks", "run", run_id))
    assert set(listing) == {"run_id", "hook_count", "hooks"}
    assert listing["run_id"] == run_id and listing["hook_count"] == 1
    assert set(listing["hooks"][0]) == SUMMARY_KEYS and listing["hooks"][0]["token"] == token

    code, out = invoke(db, "--output", "plain", "hooks", "run", run_id)
    assert code == 0 and out.split() == [token]
    code, out = invoke(db, "hooks", "run", "run_missing")
    assert code == 1 and "Workflow run not found: run_missing" in out


def test_unknown_token_hides_the_secret(tmp_path: Path, db: str, app: ModuleType) -> None:
    run_id, token = start_waiting(db, app.approval_flow, "RFC-1")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    done = cli(tmp_path, db, "hooks", "info", forged)
    assert done.returncode == 1
    assert f"Hook not found for token {run_id}:hook_approval_1:…" in done.stderr
    secret = forged.rsplit(":", 1)[1]
    assert secret not in done.stderr + done.stdout
    code, out = invoke(db, "hooks", "info", "not-a-token")
    assert code == 1 and "Hook not found for token …" in out


# ------------------------------------------------------------------ resume


def test_resume_completes_the_run(tmp_path: Path, db: str, app: ModuleType) -> None:
    run_id, token = start_waiting(db, app.approval_flow, "RFC-1")
    payload = json.dumps(GOOD)

    out = as_json(cli(tmp_path, db, "--output", "json", "hooks", "resume", token, "-p", payload))
    assert out == {
        "run_id": run_id,
        "hook_id": "hook_approval_1",
        "status": "resumed",
        "run_status": "completed",
    }
    status = as_json(cli(tmp_path, db, "--output", "json", "runs", "status", run_id))
    assert status["status"] == "completed"
    assert status["result"] == {"doc": "RFC-1", "decision": GOOD}

    again = cli(tmp_path, db, "hooks", "resume", token, "--payload", payload)
    assert again.returncode == 1
    assert "Hook hook_approval_1 of run" in again.stderr and "already received" in again.stderr
    types = event_types(db, run_id)
    assert types.count("hook.received") == 1 and types.count("workflow.completed") == 1

    info = as_json(cli(tmp_path, db, "--output", "json", "hooks", "info", token))
    assert info["status"] == "received" and info["payload"] == GOOD
    assert info["received_at"] is not None


def test_resume_table_output(db: str, app: ModuleType) -> None:
    _, token = start_waiting(db, app.approval_flow, "RFC-1")
    # In-process: the resumed run continues inside this (CLI) process.
    code, out = invoke(db, "hooks", "resume", token, "--payload", json.dumps(GOOD))
    assert code == 0, out
    assert "Hook hook_approval_1 resumed." in out and "completed" in out
    code, out = invoke(db, "--output", "plain", "hooks", "resume", token, "-p", "{}")
    assert code == 1 and "already received" in out


def test_resume_from_payload_file_and_stdin(tmp_path: Path, db: str, app: ModuleType) -> None:
    first, token1 = start_waiting(db, app.untyped_flow)
    second, token2 = start_waiting(db, app.untyped_flow)
    (tmp_path / "answer.json").write_text('{"items": [1, 2], "note": "ok"}', encoding="utf-8")

    out = as_json(
        cli(tmp_path, db, "--output", "json", "hooks", "resume", token1, "-f", "answer.json")
    )
    assert out["run_status"] == "completed"
    done = cli(tmp_path, db, "--output", "json", "hooks", "resume", token2, "-f", "-", stdin="[3]")
    assert as_json(done)["run_status"] == "completed"

    async def results(store: SQLiteStorageBackend) -> list[Any]:
        return [await get_workflow_result(r, storage=store) for r in (first, second)]

    assert on_store(db, results) == [{"items": [1, 2], "note": "ok"}, [3]]


class _Boom:
    """Unpickling this creates a directory: proof that something unpickled a payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def test_tag_like_payload_stays_plain_data(tmp_path: Path, db: str, app: ModuleType) -> None:
    run_id, token = start_waiting(db, app.untyped_flow)
    marker = tmp_path / "unpickled"
    blob = base64.b64encode(pickle.dumps(_Boom(marker))).decode("ascii")
    payload = {
        "__type__": "pickle",
        "data": blob,
        "inner": {"__type__": "cloudpickle", "value": blob},
    }
    (tmp_path / "tagged.json").write_text(json.dumps(payload), encoding="utf-8")

    out = as_json(
        cli(tmp_path, db, "--output", "json", "hooks", "resume", token, "-f", "tagged.json")
    )
    assert out["run_status"] == "completed"
    info = as_json(cli(tmp_path, db, "--output", "json", "hooks", "info", token))
    assert info["payload"] == payload
    status = as_json(cli(tmp_path, db, "--output", "json", "runs", "status", run_id))
    assert status["result"] == payload
    assert not marker.exists()


def test_resume_refusals_change_nothing(tmp_path: Path, db: str, app: ModuleType) -> None:
    run_id, token = start_waiting(db, app.approval_flow, "RFC-1")

    bad_json = cli(tmp_path, db, "hooks", "resume", token, "--payload", '{"approved": tru}')
    assert bad_json.returncode == 1
    assert "Invalid JSON in --payload: Expecting value at line 1 column 14" in bad_json.stderr

    invalid = cli(tmp_path, db, "hooks", "resume", token, "-p", '{"approved": "maybe"}')
    assert invalid.returncode == 1
    assert "does not match its schema" in invalid.stderr and "still pending" in invalid.stderr
    assert "approved:" in invalid.stderr and "reviewer: Field required" in invalid.stderr

    no_payload = cli(tmp_path, db, "hooks", "resume", token)  # stdin is not a terminal
    assert no_payload.returncode == 1
    assert "Missing --payload" in no_payload.stderr and "--payload '{}'" in no_payload.stderr
    no_token = cli(tmp_path, db, "hooks", "resume", "--payload", "{}")
    assert no_token.returncode == 1 and "Missing TOKEN" in no_token.stderr

    unknown = cli(tmp_path, db, "hooks", "resume", f"{run_id}:hook_approval_1:guess", "-p", "{}")
    assert unknown.returncode == 1
    assert f"Hook not found for token {run_id}:hook_approval_1:…" in unknown.stderr

    (tmp_path / "p.json").write_text("{}", encoding="utf-8")
    code, out = invoke(db, "hooks", "resume", token, "-p", "{}", "-f", str(tmp_path / "p.json"))
    assert code == 1 and "either --payload or --payload-file" in out
    code, out = invoke(db, "hooks", "resume", token, "-f", "-", stdin="{oops")
    assert code == 1 and "Invalid JSON in --payload-file (stdin)" in out

    hooks = on_store(db, lambda s: s.list_hooks(run_id=run_id))
    assert [h.status for h in hooks] == [HookStatus.PENDING]
    assert "hook.received" not in event_types(db, run_id)


def test_without_the_module_schema_still_checks(tmp_path: Path, db: str, app: ModuleType) -> None:
    """A process without the workflow's code validates against the stored JSON schema,
    records the payload, and says the run waits for a process that has the code."""
    run_id, token = start_waiting(db, app.approval_flow, "RFC-1")
    args = ("--output", "json", "hooks", "resume", token, "-p")

    invalid = cli(tmp_path, db, *args, '{"approved": "maybe"}', module=False)
    assert invalid.returncode == 1 and "'reviewer' is a required property" in invalid.stderr

    done = cli(tmp_path, db, *args, json.dumps(GOOD), module=False)
    assert as_json(done)["run_status"] == "suspended"
    assert "workflow 'hooks_cli_approval' is not importable here" in done.stderr

    async def finish(store: SQLiteStorageBackend) -> Any:
        return await resume(run_id, storage=store)

    assert on_store(db, finish) == {"doc": "RFC-1", "decision": GOOD}


# ------------------------------------------------------------------ interactive (a real pty)


def run_on_tty(tmp_path: Path, db: str, answers: str, *args: str) -> tuple[int, str, str]:
    """Run the CLI with a pseudo-terminal as stdin, the answers typed ahead."""
    master, slave = os.openpty()
    cmd = [sys.executable, "-m", "pyworkflow.cli", "--storage", "sqlite", "--storage-path", db]
    try:
        proc = subprocess.Popen(
            [*cmd, "--module", "hooks_app", *args],
            cwd=tmp_path,
            env=cli_env(),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(slave)
        os.write(master, answers.encode())
        try:
            out, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:  # it asked more than we answered
            proc.kill()
            out, err = proc.communicate()
    finally:
        os.close(master)
    return proc.returncode, out, err


def test_interactive_pick_and_schema_form(tmp_path: Path, db: str, app: ModuleType) -> None:
    run_id, _ = start_waiting(db, app.approval_flow, "RFC-1")
    # hook number, approved, reviewer (text, even if it looks like JSON), score left out
    code, out, err = run_on_tty(
        tmp_path, db, "1\ntrue\n42\n\n", "--output", "json", "hooks", "resume"
    )
    assert code == 0, err
    assert "1) approval" in err and "approved (boolean, required)" in err
    assert "score (integer, default 0)" in err
    assert json.loads(out)["run_status"] == "completed"  # prompts went to stderr

    async def result(store: SQLiteStorageBackend) -> Any:
        return await get_workflow_result(run_id, storage=store)

    decision = {"approved": True, "reviewer": "42", "score": 0}
    assert on_store(db, result) == {"doc": "RFC-1", "decision": decision}


def test_interactive_json_prompt_without_schema(tmp_path: Path, db: str, app: ModuleType) -> None:
    run_id, token = start_waiting(db, app.untyped_flow)
    code, out, err = run_on_tty(
        tmp_path, db, 'not json\n{"x": 1}\n', "--output", "json", "hooks", "resume", token
    )
    assert code == 0, err
    assert "Payload for hook 'signal' (JSON)" in err and "not JSON" in err  # asked again
    assert json.loads(out)["run_status"] == "completed"
    assert on_store(db, lambda s: get_workflow_result(run_id, storage=s)) == {"x": 1}
