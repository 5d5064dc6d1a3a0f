"""docs/guides/cli.md matches the real ``--help``; shell completion works as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyworkflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import cli_reference  # noqa: E402

COMMANDS = [path for path, _ in cli_reference.walk(main, ["pyworkflow"], None)]


def test_reference_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_the_tree_has_every_documented_command() -> None:
    names = {" ".join(path[1:]) for path in COMMANDS}
    expected = {
        "workflows list", "workflows info", "workflows run",
        "runs list", "runs status", "runs logs", "runs cancel", "runs children", "runs chain",
        "runs timeline",
        "hooks list", "hooks info", "hooks run", "hooks resume",
        "schedules list", "schedules create", "schedules show", "schedules pause",
        "schedules resume", "schedules delete", "schedules trigger", "schedules backfill",
        "schedules update",
        "scheduler run",
        "worker run", "worker status", "worker list", "worker queues",
        "setup", "quickstart",
    }  # fmt: skip
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p[1:]) or "root")
def test_every_command_has_help(path: list[str]) -> None:
    result = CliRunner().invoke(main, [*path[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: pyworkflow" in result.output
    # The first help line is a real sentence, not a placeholder.
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 10, summary


def _complete(words: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **env_extra)
    return subprocess.run(
        [str(Path(sys.executable).parent / "pyworkflow")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    done = _complete("", {"_PYWORKFLOW_COMPLETE": f"{shell}_source"})
    assert done.returncode == 0, done.stderr
    assert "pyworkflow" in done.stdout and "_PYWORKFLOW_COMPLETE" in done.stdout


def test_bash_completion_completes_commands_and_options() -> None:
    done = _complete(
        "",
        {"_PYWORKFLOW_COMPLETE": "bash_complete", "COMP_WORDS": "pyworkflow ru", "COMP_CWORD": "1"},
    )
    assert done.stdout.split() == ["plain,runs"]
    done = _complete(
        "",
        {
            "_PYWORKFLOW_COMPLETE": "bash_complete",
            "COMP_WORDS": "pyworkflow --output ",
            "COMP_CWORD": "2",
        },
    )
    assert set(done.stdout.split()) == {"plain,table", "plain,json", "plain,plain"}
