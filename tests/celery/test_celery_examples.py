"""examples/celery run against the test cluster; docker-compose.yml and DISTRIBUTED.md
agree with the commands the tests run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.celery.conftest import BEAT, CELERY, STEP_WORKER, WORKFLOW_WORKER, Cluster

ROOT = Path(__file__).resolve().parents[2]
CELERY_PREFIX = "celery -A pyworkflow.celery.app"


def _run_example(cluster: Cluster, name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "celery" / name)],
        cwd=ROOT,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_basic_example_runs_on_the_workers(cluster: Cluster) -> None:
    out = _run_example(cluster, "01_basic_workflow.py")
    assert "status:   completed" in out
    assert (
        "result:   {'charge_id': 'charge_A-100', 'receipt': 'receipt for A-100 (charge_A-100)'}"
        in out
    )


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_long_running_example_is_woken_by_beat(cluster: Cluster) -> None:
    out = _run_example(cluster, "04_long_running.py")
    assert "[1] while it sleeps the run is suspended" in out
    assert "[2] completed" in out
    late_ms = int(re.search(r"the sleep ended (-?\d+) ms after its timer", out).group(1))  # type: ignore[union-attr]
    assert 0 <= late_ms <= 1500


def _commands_in(text: str) -> list[str]:
    """``celery -A pyworkflow.celery.app ...`` commands, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [m.strip() for m in re.findall(rf"({re.escape(CELERY_PREFIX)}[^\n`]*)", joined)]


def test_distributed_md_commands_are_the_ones_tested() -> None:
    tested = {
        " ".join(["celery", *CELERY[3:], *argv]) for argv in (WORKFLOW_WORKER, STEP_WORKER, BEAT)
    }
    commands = _commands_in((ROOT / "DISTRIBUTED.md").read_text())
    assert tested <= set(commands), f"DISTRIBUTED.md must show {tested - set(commands)}"
    for command in commands:  # every other variant only adds options to a tested command
        assert any(command.startswith(base) for base in tested) or " flower" in command, command


def test_docker_compose_has_the_topology() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "workflow-worker", "step-worker", "beat", "app"} <= set(services)

    def command(name: str) -> str:
        value = services[name]["command"]
        return value if isinstance(value, str) else " ".join(value)

    assert command("workflow-worker").startswith(
        " ".join(["celery", *CELERY[3:], *WORKFLOW_WORKER])
    )
    assert command("step-worker").startswith(" ".join(["celery", *CELERY[3:], *STEP_WORKER]))
    assert command("beat").startswith(" ".join(["celery", *CELERY[3:], *BEAT]))
    assert "examples/celery/01_basic_workflow.py" in command("app")
    for name in ("workflow-worker", "step-worker", "beat", "app"):
        env = services[name]["environment"]
        assert env["PYWORKFLOW_CELERY_BROKER"].startswith("redis://redis:")
        assert env["PYWORKFLOW_STORAGE_TYPE"] == "postgres"
