"""``pyworkflow quickstart`` and ``pyworkflow setup``, run as real subprocesses.

Every command runs in an empty tmp dir with no ``PYWORKFLOW_*`` variables and no
PYTHONPATH: the scaffold is found only because discovery puts the cwd on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyworkflow.cli.scaffold import config_data, config_yaml, scaffold_files, storage_options
from pyworkflow.config import read_yaml_config

SCAFFOLD = [
    "README.md",
    "docker-compose.yml",
    "pyworkflow.config.yaml",
    "workflows/__init__.py",
    "workflows/approval.py",
    "workflows/hello.py",
]
SETUP_KEYS = {"config_path", "backup_path", "docker_compose_path", "checks"}
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "pyworkflow")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env.pop("PYTHONPATH", None)
    return env


def cli(
    cwd: Path, *args: str, script: bool = False, stdin: Any = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    head = [CONSOLE_SCRIPT] if script else [sys.executable, "-m", "pyworkflow.cli"]
    return subprocess.run(
        [*head, *args],
        cwd=cwd,
        env=clean_env(),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(cwd: Path, *args: str, script: bool = False) -> str:
    done = cli(cwd, *args, script=script)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def as_json(cwd: Path, *args: str) -> Any:
    return json.loads(ok(cwd, "--output", "json", *args))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ok(tmp_path, "quickstart", "--non-interactive")
    return tmp_path


# ----------------------------------------------------------------------------- the flows


def test_quickstart_then_hello_runs_and_every_runs_command_shows_it(tmp_path: Path) -> None:
    out = ok(tmp_path, "quickstart", "--non-interactive")
    assert sorted(snapshot(tmp_path)) == SCAFFOLD
    assert "pyworkflow workflows run hello --arg name=Ada" in out

    # The console script, whose sys.path does not hold the cwd: discovery must add it.
    out = ok(tmp_path, "workflows", "run", "hello", "--arg", "name=Ada", script=True)
    assert "Hello, Ada! (delivered)" in out
    assert (tmp_path / "pyworkflow_data" / "pyworkflow.db").is_file()

    (row,) = as_json(tmp_path, "runs", "list")
    assert row["workflow_name"] == "hello" and row["status"] == "completed"
    status = as_json(tmp_path, "runs", "status", row["run_id"])
    assert status["status"] == "completed"
    assert status["result"] == "Hello, Ada! (delivered)"
    assert status["input_kwargs"] == {"name": "Ada"}
    types = [event["type"] for event in as_json(tmp_path, "runs", "logs", row["run_id"])]
    assert types[0] == "workflow.started" and types[-1] == "workflow.completed"
    assert types.count("step.completed") == 2
    assert "sleep.started" in types and "sleep.completed" in types


def test_approval_waits_on_a_hook_until_hooks_resume(project: Path) -> None:
    ok(project, "workflows", "run", "approval", "--arg", "item=laptop", "--no-wait")
    (run,) = as_json(project, "runs", "list")
    assert run["workflow_name"] == "approval" and run["status"] == "suspended"

    (pending,) = as_json(project, "hooks", "list")
    assert pending["run_id"] == run["run_id"] and pending["status"] == "pending"
    assert pending["name"] == "manager_approval"

    resumed = as_json(
        project, "hooks", "resume", pending["token"], "--payload", '{"approved": true}'
    )
    assert resumed["run_id"] == run["run_id"] and resumed["status"] == "resumed"
    status = as_json(project, "runs", "status", run["run_id"])
    assert status["status"] == "completed" and status["result"] == "ordered laptop"
    assert as_json(project, "hooks", "list", "--status", "pending") == []


# ---------------------------------------------------------------------------- quickstart


def test_quickstart_refuses_to_overwrite_without_force(project: Path) -> None:
    (project / "workflows" / "hello.py").write_text("# mine\n")
    before = snapshot(project)
    done = cli(project, "quickstart", "--non-interactive")
    assert done.returncode == 1
    assert "already exist" in done.stderr and "workflows/hello.py" in done.stderr
    assert "--force" in done.stderr
    assert snapshot(project) == before

    ok(project, "quickstart", "--non-interactive", "--force")
    assert (project / "workflows" / "hello.py").read_text() != "# mine\n"


def test_quickstart_refuses_when_only_one_file_exists(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("my readme\n")
    done = cli(tmp_path, "quickstart", "--non-interactive")
    assert done.returncode == 1 and "README.md" in done.stderr
    assert sorted(snapshot(tmp_path)) == ["README.md"]  # nothing else written either


def test_quickstart_skip_docker_file_storage_json(tmp_path: Path) -> None:
    data = as_json(
        tmp_path, "quickstart", "--non-interactive", "--skip-docker", "--storage", "file"
    )
    assert set(data) == {"directory", "template", "storage", "files", "next_steps"}
    assert data["storage"] == "file" and "docker-compose.yml" not in data["files"]
    assert not (tmp_path / "docker-compose.yml").exists()
    config = read_yaml_config(tmp_path / "pyworkflow.config.yaml")
    assert config == {
        "module": "workflows",
        "runtime": "local",
        "storage": {"type": "file", "base_path": "./pyworkflow_data"},
    }
    assert {row["name"] for row in as_json(tmp_path, "workflows", "list")} >= {"hello", "approval"}


def test_quickstart_files_are_valid(project: Path) -> None:
    config = read_yaml_config(project / "pyworkflow.config.yaml")
    assert config["storage"] == {"type": "sqlite", "base_path": "./pyworkflow_data/pyworkflow.db"}
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"redis", "postgres"}
    for name in ("hello.py", "approval.py", "__init__.py"):
        compile((project / "workflows" / name).read_text(), name, "exec")
    assert "pyworkflow hooks resume" in (project / "README.md").read_text()


def test_quickstart_directory_and_not_a_tty_note(tmp_path: Path) -> None:
    done = cli(tmp_path, "quickstart", "--directory", "proj")
    assert done.returncode == 0, done.stderr
    assert "stdin is not a terminal" in done.stderr
    assert sorted(snapshot(tmp_path / "proj")) == SCAFFOLD
    assert "cd proj" in done.stdout


def run_with_tty(cwd: Path, args: list[str], answers: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a pseudo-terminal as stdin, typing ``answers``."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyworkflow.cli", *args],
            cwd=cwd,
            env=clean_env(),
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(master, answers.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_quickstart_interactive_asks(tmp_path: Path) -> None:
    done = run_with_tty(tmp_path, ["quickstart"], "basic\nfile\nn\n")
    assert done.returncode == 0, done.stderr
    assert "Template" in done.stderr and "Storage" in done.stderr
    assert not (tmp_path / "docker-compose.yml").exists()
    storage = read_yaml_config(tmp_path / "pyworkflow.config.yaml")["storage"]
    assert storage["type"] == "file"


# --------------------------------------------------------------------------------- setup


def test_setup_writes_yaml_backs_up_and_reports_json(tmp_path: Path) -> None:
    data = as_json(tmp_path, "setup", "--non-interactive", "--storage-path", "db/x.db")
    assert set(data) == SETUP_KEYS and data["backup_path"] is None
    assert Path(data["docker_compose_path"]) == tmp_path / "docker-compose.yml"
    config = read_yaml_config(Path(data["config_path"]))
    assert config == {"runtime": "local", "storage": {"type": "sqlite", "base_path": "db/x.db"}}
    assert (tmp_path / "db" / "x.db").is_file()  # the storage check connected
    checks = {check["name"]: check for check in data["checks"]}
    assert set(checks) == {"config", "storage"} and all(c["ok"] for c in checks.values())
    assert set(data["checks"][0]) == {"name", "ok", "detail"}

    first = (tmp_path / "pyworkflow.config.yaml").read_text()
    data = as_json(tmp_path, "setup", "--non-interactive", "--storage", "memory", "--skip-docker")
    assert Path(data["backup_path"]).read_text() == first
    assert data["docker_compose_path"] is None
    assert read_yaml_config(tmp_path / "pyworkflow.config.yaml")["storage"] == {"type": "memory"}
    # A third run keeps the first backup.
    data = as_json(tmp_path, "setup", "--non-interactive", "--skip-docker")
    assert data["backup_path"].endswith(".backup.1")
    assert (tmp_path / "pyworkflow.config.yaml.backup").read_text() == first


def test_setup_keeps_an_existing_compose_file(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    done = cli(tmp_path, "--output", "json", "setup", "--non-interactive")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["docker_compose_path"] is None
    assert "left unchanged" in done.stderr
    assert (tmp_path / "docker-compose.yml").read_text() == "services: {}\n"


def test_setup_module_imports_and_table_output(project: Path) -> None:
    out = ok(project, "setup", "--non-interactive", "--module", "workflows", "--skip-docker")
    assert "✓ config:" in out and "✓ storage:" in out
    assert "✓ module: workflows imported (approval, hello)" in out
    assert "Backed up the previous one to pyworkflow.config.yaml.backup" in out
    assert read_yaml_config(project / "pyworkflow.config.yaml")["module"] == "workflows"


def test_setup_keeps_the_configured_module(project: Path) -> None:
    data = as_json(project, "setup", "--non-interactive", "--storage", "file", "--skip-docker")
    assert read_yaml_config(project / "pyworkflow.config.yaml") == {
        "module": "workflows",
        "runtime": "local",
        "storage": {"type": "file", "base_path": "./pyworkflow_data"},
    }
    assert [c["name"] for c in data["checks"]] == ["config", "storage", "module"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--storage", "postgres", "--storage-path", "x.db"], "--storage-path is for sqlite"),
        (["--dsn", "postgresql://db/x"], "--dsn is for postgres storage"),
        (["--broker", "redis://localhost/0"], "add --runtime celery"),
    ],
)
def test_setup_refuses_flags_that_do_not_fit(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    done = cli(tmp_path, "setup", "--non-interactive", *flags)
    assert done.returncode == 1 and message in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_setup_bad_module_fails_after_writing(tmp_path: Path) -> None:
    done = cli(tmp_path, "setup", "--non-interactive", "--module", "no_such_mod", "--skip-docker")
    assert done.returncode == 1
    assert "✗ module:" in done.stdout and "no_such_mod" in done.stdout
    assert "checks failed: module" in done.stderr
    assert read_yaml_config(tmp_path / "pyworkflow.config.yaml")["module"] == "no_such_mod"


@pytest.mark.parametrize("kind", ["mysql", "dynamodb", "cassandra"])
def test_setup_refuses_storages_we_do_not_ship(tmp_path: Path, kind: str) -> None:
    done = cli(tmp_path, "setup", "--non-interactive", "--storage", kind)
    assert done.returncode == 1
    assert f"Storage '{kind}' is not supported by this version" in done.stderr
    assert "sqlite/file/memory/postgres" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_setup_unknown_storage(tmp_path: Path) -> None:
    done = cli(tmp_path, "setup", "--non-interactive", "--storage", "oracle")
    assert done.returncode == 1 and "Unknown storage type 'oracle'" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_setup_celery_with_unreachable_broker_warns(tmp_path: Path) -> None:
    broker = "redis://127.0.0.1:1/0"
    done = cli(tmp_path, "setup", "--non-interactive", "--runtime", "celery", "--broker", broker)
    assert done.returncode == 0, done.stderr
    assert f"! broker: {broker} did not answer" in done.stdout
    config = read_yaml_config(tmp_path / "pyworkflow.config.yaml")
    assert config["runtime"] == "celery"
    assert config["celery"] == {"broker": broker, "result_backend": "redis://127.0.0.1:1/1"}


def test_setup_celery_postgres_all_reachable(tmp_path: Path, redis_url: str, pg_dsn: str) -> None:
    data = as_json(
        tmp_path,
        "setup",
        "--non-interactive",
        "--skip-docker",
        "--runtime=celery",
        f"--broker={redis_url}",
        "--storage=postgres",
        f"--dsn={pg_dsn}",
    )
    checks = {check["name"]: check for check in data["checks"]}
    assert checks["storage"]["ok"] and checks["broker"]["ok"], checks
    config = read_yaml_config(tmp_path / "pyworkflow.config.yaml")
    assert config["storage"] == {"type": "postgres", "dsn": pg_dsn}


def test_setup_unreachable_postgres_fails(tmp_path: Path) -> None:
    dsn = "postgresql://u:p@127.0.0.1:1/db"
    done = cli(tmp_path, "setup", "--non-interactive", "--storage", "postgres", "--dsn", dsn)
    assert done.returncode == 1
    assert "✗ storage: postgres did not connect" in done.stdout
    assert "checks failed: storage" in done.stderr


def test_setup_interactive_asks(tmp_path: Path) -> None:
    answers = "workflows_x\ncelery\nfile\nstore\nmemory://\nn\n"
    done = run_with_tty(tmp_path, ["setup"], answers)
    assert "Module(s)" in done.stderr and "Runtime" in done.stderr
    config = read_yaml_config(tmp_path / "pyworkflow.config.yaml")
    assert config == {
        "module": "workflows_x",
        "runtime": "celery",
        "storage": {"type": "file", "base_path": "store"},
        "celery": {"broker": "memory://", "result_backend": "memory://"},
    }
    assert done.returncode == 1  # workflows_x does not exist: the module check fails
    assert "✓ broker: memory:// needs no server" in done.stdout


# ------------------------------------------------------------------------------ scaffold


@pytest.mark.parametrize("kind", ["sqlite", "file", "memory", "postgres"])
@pytest.mark.parametrize("runtime", ["local", "celery"])
def test_config_yaml_round_trips(tmp_path: Path, kind: str, runtime: str) -> None:
    data = config_data(module="a.b, c", runtime=runtime, storage=storage_options(kind))
    path = tmp_path / "pyworkflow.config.yaml"
    path.write_text(config_yaml(data, celery_hint=True))
    assert read_yaml_config(path) == data
    assert data["modules"] == ["a.b", "c"]


def test_scaffold_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="Unknown template"):
        scaffold_files(template="fancy")
    with pytest.raises(ValueError, match="sqlite, file"):
        scaffold_files(storage="postgres")
