"""examples/celery/durable run against the test cluster; docker-compose.yml and
DISTRIBUTED.md agree with the commands the tests run, and every other command of
DISTRIBUTED.md is run here (Flower's only where Flower is installed)."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.celery.conftest import BEAT, CELERY, DISCOVER, STEP_WORKER, WORKFLOW_WORKER, Cluster
from tests.support import free_port, kill_tree, wait_until

ROOT = Path(__file__).resolve().parents[2]
DURABLE = ROOT / "examples" / "celery" / "durable"
CELERY_PREFIX = "celery -A pyworkflow.celery.app"


def _number(pattern: str, out: str) -> float:
    found = re.search(pattern, out)
    assert found is not None, f"{pattern!r} not in:\n{out}"
    return float(found.group(1))


def _basic(out: str) -> None:
    assert "status:   completed" in out
    expected = "{'charge_id': 'charge_A-100', 'receipt': 'receipt for A-100 (charge_A-100)'}"
    assert f"result:   {expected}" in out


def _long_running(out: str) -> None:
    assert "[1] while it sleeps the run is suspended" in out
    assert "[2] completed" in out
    assert 0 <= _number(r"the sleep ended (-?\d+) ms after its timer", out) <= 1500


def _retries(out: str) -> None:
    assert "result: 'invoice-7 synced by step process" in out
    assert "step.failed    attempt 1: API unavailable" in out
    assert "step.retrying  attempt 2 after 1s" in out
    # Every retried attempt waited out its 1 s delay on a timer (Beat: <= 1.5 s late).
    waits = [float(w) for w in re.findall(r"\(waited (\d+\.\d+)s on the retry timer\)", out)]
    # (Event times and timer times are taken a moment apart: allow 50 ms.)
    assert waits and all(0.95 <= w <= 2.5 for w in waits), out
    assert "FatalError, not retried: Workflow run" in out
    assert "second run: failed after 1 attempt" in out


def _batch(out: str) -> None:
    assert "summary: {'count': 20, 'total': 90, 'best': 9}" in out
    assert _number(r"ran on (\d+) step processes", out) == 2
    assert _number(r"the batch took (\d+\.\d+)s", out) < 4.0  # 4 s when not in parallel
    assert "step outcomes recorded: 21 (20 items + the summary), each once" in out


def _idempotency(out: str) -> None:
    assert "(same run: True)" in out and "(same run: False)" not in out
    assert "(new run: True)" in out
    assert "result: charged 1999 cents for p-1" in out
    assert "charge_payment recorded for p-1: 1 time(s)" in out
    assert "charge_payment recorded for p-2: 1 time(s)" in out


def _fault_tolerance(out: str) -> None:
    assert "[1] reserve_stock attempt 1 failed; the run is suspended" in out
    assert 0 < _number(r"due in (-?\d+\.\d)s", out) <= 2.0
    assert 1.95 <= _number(r"attempt 2 was dispatched (\d+\.\d+)s after", out) <= 3.5
    assert "packed by step process" in out and "on delivery 2" in out  # a prefork pool
    assert "[2] pack_parcel outcomes recorded: 1" in out
    assert "recover_on_worker_loss=True, max_recovery_attempts=2, recovery_attempts=0" in out


def _hooks(out: str) -> None:
    assert re.search(r"\[1\] on_created sent the manager run_\w+:hook_manager_decision_1:<\d+", out)
    assert "[1] the run is suspended, hook manager_decision pending" in out
    # Validated with the model, or with its JSON schema where the model is not importable.
    (rejected,) = re.findall(r"\[1\] bad payload rejected: (.*)", out)
    assert "reviewer" in rejected and "approved" in rejected, rejected
    assert "[1] after the bad payload: suspended" in out
    assert "[1] forged token: HookNotFoundError" in out
    assert "[1] resume_hook -> resumed (hook_manager_decision_1)" in out
    assert "E-1 paid by step process" in out and "approved by grace" in out
    assert "[1] second resume: HookAlreadyReceivedError" in out
    assert "[2] a report with a 2s deadline: suspended" in out
    assert "[2] result: 'E-2 escalated to the finance team'" in out
    assert 0 <= _number(r"\[2\] hook expired (-?\d+) ms after its deadline", out) < 1500
    assert "[2] a late answer: HookExpiredError" in out


def _cancellation(out: str) -> None:
    assert "[1] flight and hotel booked; the run sleeps" in out
    assert _number(r"\[1\] cancel_workflow -> True; cancelled (\d+\.\d+)s later", out) < 3.0
    undo = re.findall(r"step.started\s+(\w+)", out)
    assert undo == ["book_flight", "book_hotel", "cancel_booking", "cancel_booking"], out
    assert "book_car" not in out
    undone = re.findall(r"cancel_booking -> \"cancelled (\S+)\"", out)
    assert undone == ["HT-T-7", "FL-T-7"], out  # in reverse order
    assert re.search(
        r"workflow\.cancelled\s+reason='customer changed plans' cleanup_completed=True", out
    )
    assert _number(r"\[2\] status: cancelled (\d+\.\d+)s after the request", out) < 3.0
    assert _number(r"stopped after (\d+) of 100 chunks", out) < 40
    assert _number(r"chunks, (-?\d+\.\d)s after the request", out) < 2.0
    assert "[3] cancelling the trip again -> False (it had already ended)" in out


def _children(out: str) -> None:
    assert (
        "[1] while arrange_shipping sleeps: parent suspended, child suspended (timers: ['sleep'])"
        in out
    )
    # The 2 s sleep is in there, woken by Beat (<= 1.5 s late), plus the other children.
    assert 2.0 <= _number(r"\[2\] parent completed (\d+\.\d)s after start\(\)", out) < 6.0
    assert (
        "[2] result: {'charge': 'ch_A-17_59.90', 'tracking': 'TRK-A-17', "
        "'gift_card': 'none (FatalError: gift card service rejected A-17)'}" in out
    )
    tree = re.findall(r"^ {8}(\w+) \[(\w+)\] depth=(\d)", out, re.M)
    assert tree == [
        ("charge_order", "completed", "1"),
        ("arrange_shipping", "completed", "1"),
        ("issue_gift_card", "failed", "1"),
    ], out
    assert "place_order [completed] depth=0" in out
    assert "[3] get_parent(charge_order) is the order run: True" in out
    events = re.findall(r"(child_workflow\.\w+)\s+child_(\w+?)_[0-9a-f]{16}", out)
    assert events == [
        ("child_workflow.started", "charge_order"),
        ("child_workflow.completed", "charge_order"),
        ("child_workflow.started", "arrange_shipping"),
        ("child_workflow.completed", "arrange_shipping"),
        ("child_workflow.started", "issue_gift_card"),
        ("child_workflow.failed", "issue_gift_card"),
    ], out


def _child_patterns(out: str) -> None:
    # 20 x 0.3 s on the cluster's 2 step processes: about 3 s, never 6 s.
    assert _number(r"20 child runs of 0\.3s each: (\d+\.\d+)s in all", out) < 5.0
    assert _number(r"their steps ran on (\d+) step processes", out) == 2
    assert _number(r"step processes, (\d+) at most at once", out) == 2
    assert f"[1] results in call order: {list(range(20))}" in out
    assert "[2] all 3 children started; parent suspended" in out
    assert "[2] children: completed, completed, completed" in out
    assert (
        "[2] result: {'account': 'acct-ada', 'mails': ['welcome mail sent to ada', "
        "'tips mail sent to ada', 'survey mail sent to ada']}" in out
    )
    assert "[3] parent result: 'upgraded (ChildWorkflowFailedError: Cancelled" in out
    assert '[3] child remind_later["grace"]: cancelled' in out
    assert "[3]     reason: 'user upgraded'" in out
    assert '[3] child remind_later["grace-manager"]: cancelled' in out
    assert re.search(r"\[3\]     reason: 'Parent workflow run_\w+ completed'", out)
    assert "[4] level 3 stops: MaxNestingDepthError: Maximum nesting depth of 3 exceeded" in out
    depths = re.findall(r"\[4\]\s+nest\[(\d)\] depth=(\d)", out)
    assert depths == [(str(d), str(d)) for d in range(4)], out


def _continue_as_new(out: str) -> None:
    assert _number(r"200 polls, 20 per run, in (\d+\.\d)s on the workers", out) < 30
    assert "runs in the chain: 10" in out
    assert "events per run: max 42, total 420" in out  # started + 20 x 2 + the end
    assert "statuses: 9 continued_as_new, then completed" in out
    for line in (
        "start() returned the first run: True",
        "second run continued from the first: True",
        "each run continued to the next: True",
        "same chain read from its middle run: True",
        "last run's arguments: [180, 535]",
        "final result: {'cursor': 200, 'items_seen': 594}",
    ):
        assert line in out, line
    assert re.search(r"the last run's polls ran on step processes \[\d+", out)


def _schedules(out: str) -> None:
    assert "[1] auto_weekday_digest: active, Cron: 0 7 * * MON-FRI (Europe/Berlin)" in out
    assert re.search(r"\[1\] trigger_schedule -> sched_auto_wee_\w+, run by the workers: 6", out)
    assert "[1] total_runs +1, last_run_id is that run: True, next slot unchanged: True" in out
    assert "[2] January 1-30, daily at 06:00: 30 runs, 30 completed" in out
    assert "[2] backfilled again: the same 30 run ids, nothing new: True" in out
    assert "[3] paused (paused) for 2s: no run meanwhile: True" in out
    assert _number(r"\[3\] resumed \(active\): fired again within (\d+\.\d)s", out) < 2.0
    assert "[3] deleted: status deleted, no run since: True" in out
    assert len(re.findall(r"^\[4\] run \d: slot ", out, re.M)) == 5
    (late,) = re.findall(r"\[4\] each run started (.*) ms after its slot", out)
    assert all(0 <= int(ms) < 500 for ms in late.split(", ")), late  # Beat ticks every 1 s
    assert "[4] counters: total_runs=5 successful_runs=5 failed_runs=0 skipped_runs=0" in out
    assert "[5] 9 slots: every one a run or a skip" in out
    skipped = re.findall(r"\[5\] slot \+\d\.\ds skipped: a previous run is still going", out)
    assert len(skipped) >= 4, out  # 2.5 s runs, a slot every second
    assert "[5] one schedule.skipped event per skipped slot: True" in out
    assert "[5] runs never overlapped: True" in out


#: Every example, with what its output must show.
EXAMPLES: dict[str, Callable[[str], None]] = {
    "01_basic_workflow.py": _basic,
    "02_long_running.py": _long_running,
    "03_retries.py": _retries,
    "04_batch_processing.py": _batch,
    "05_idempotency.py": _idempotency,
    "06_fault_tolerance.py": _fault_tolerance,
    "07_hooks.py": _hooks,
    "08_cancellation.py": _cancellation,
    "09_child_workflows.py": _children,
    "10_child_workflow_patterns.py": _child_patterns,
    "11_continue_as_new.py": _continue_as_new,
    "12_schedules.py": _schedules,
}


def test_every_example_is_tested_and_imported_by_the_workers() -> None:
    found = {p.name for p in DURABLE.glob("*.py") if p.name != "__init__.py"}
    assert found == set(EXAMPLES), "add new examples to EXAMPLES here"
    # The package (PYWORKFLOW_DISCOVER=examples.celery.durable) imports each of them.
    # Read, not imported: the test process must not register the examples' workflows.
    package = ast.parse((DURABLE / "__init__.py").read_text())
    (listed,) = [
        ast.literal_eval(node.value)
        for node in package.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXAMPLES"
    ]
    assert {f"{name}.py" for name in listed} == found
    assert "examples.celery.durable" in DISCOVER.split(",")
    readme = (ROOT / "examples" / "celery" / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in found), "describe each example in README.md"


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_on_the_workers(cluster: Cluster, name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(DURABLE / name)],
        cwd=ROOT,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"\n--- {name}\n{done.stdout}", end="")
    EXAMPLES[name](done.stdout)


def _commands_in(text: str) -> list[str]:
    """``celery -A pyworkflow.celery.app ...`` commands, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", "", text)
    return [m.strip() for m in re.findall(rf"({re.escape(CELERY_PREFIX)}[^\n`]*)", joined)]


def _bash_lines(text: str) -> list[str]:
    """Every command of the ```bash blocks, continuation lines joined."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)\n\s*```", text, re.S):
        for line in re.sub(r"\\\n\s*", "", block).splitlines():
            if line.strip() and not line.strip().startswith("#"):
                lines.append(line.strip())
    return lines


DISTRIBUTED_MD = (ROOT / "DISTRIBUTED.md").read_text()
CLUSTER_COMMANDS = {
    " ".join(["celery", *CELERY[3:], *argv]) for argv in (WORKFLOW_WORKER, STEP_WORKER, BEAT)
}
#: Commands that test_monitoring_commands_work_on_the_cluster runs as written.
RUN_BY_TEST = (f"{CELERY_PREFIX} inspect ", "redis-cli ", "pyworkflow runs list ")
FLOWER = f"{CELERY_PREFIX} flower"


def test_distributed_md_commands_are_the_ones_tested() -> None:
    commands = _commands_in(DISTRIBUTED_MD)
    missing = CLUSTER_COMMANDS - set(commands)
    assert not missing, f"DISTRIBUTED.md must show {missing}"
    for command in commands:  # every other variant only adds options to a tested command
        assert any(command.startswith(base) for base in CLUSTER_COMMANDS) or command.startswith(
            (*RUN_BY_TEST, FLOWER)
        ), command
    for line in _bash_lines(DISTRIBUTED_MD):  # and nothing else is left untested
        assert (
            line.startswith("export PYWORKFLOW_")
            or any(line.startswith(base) for base in CLUSTER_COMMANDS)
            or line.startswith((*RUN_BY_TEST, FLOWER))
            or line == "pip install flower"
        ), f"DISTRIBUTED.md shows a command no test runs: {line}"


def _argv(command: str, cluster: Cluster) -> list[str]:
    """A documented command as this machine runs it: this Python's celery and CLI, the
    test Redis instead of localhost:6379/0."""
    words = shlex.split(command)
    if words[0] == "celery":
        return [*CELERY, *words[3:]]
    if words[0] == "pyworkflow":
        return [sys.executable, "-m", "pyworkflow.cli", *words[1:]]
    url = urlparse(cluster.broker)
    swap = {"-h": url.hostname, "-p": str(url.port), "-n": url.path.lstrip("/")}
    return [swap.get(words[i - 1], w) if i else w for i, w in enumerate(words)]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_monitoring_commands_work_on_the_cluster(cluster: Cluster) -> None:
    ran = []
    for command in _bash_lines(DISTRIBUTED_MD):
        if not command.startswith(RUN_BY_TEST):
            continue
        done = subprocess.run(
            _argv(command, cluster), cwd=ROOT, env=cluster.env, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        ran.append(command)
        if command.endswith("active_queues"):
            for queue in ("pyworkflow.workflows", "pyworkflow.schedules", "pyworkflow.steps"):
                assert f"'name': '{queue}'" in done.stdout, done.stdout
        elif " llen " in command:
            assert done.stdout.strip().isdigit(), done.stdout
    assert len(ran) >= 3, ran


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_flower_command_shows_the_queues(cluster: Cluster) -> None:
    # Flower is in the dev extra so that this runs; users install it themselves.
    (command,) = [c for c in _bash_lines(DISTRIBUTED_MD) if c.startswith(FLOWER)]
    port = free_port()
    argv = [*_argv(command.replace("--port=5555", f"--port={port}"), cluster)]
    env = {**cluster.env, "FLOWER_UNAUTHENTICATED_API": "true"}
    flower = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def get(path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                return str(reply.read().decode())
        except OSError:
            return None

    try:
        wait_until(lambda: get("/healthcheck") == "OK", timeout=30, message="Flower never came up")
        queues = json.loads(get("/api/queues/length") or "{}")
        names = {q["name"] for q in queues["active_queues"]}
        assert {"pyworkflow.workflows", "pyworkflow.steps", "pyworkflow.schedules"} <= names
    finally:
        kill_tree(flower.pid)
        flower.wait(timeout=10)


COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _compose_command(name: str) -> list[str]:
    value = COMPOSE["services"][name]["command"]
    return shlex.split(value) if isinstance(value, str) else list(value)


def test_docker_compose_config_validates() -> None:
    """What `docker compose config` checks, with Debian's docker-compose (no engine is
    needed for it; scripts/ensure-servers.sh installs it)."""
    done = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_docker_compose_is_consistent() -> None:
    """What ``docker compose config`` would check (no Docker here): every service has an
    image, its dependencies and named volumes exist; and what it cannot: the commands."""
    services = COMPOSE["services"]
    assert set(services) == {"redis", "postgres", "workflow-worker", "step-worker", "beat", "app"}
    for name, service in services.items():
        assert service.get("image"), name
        assert set(service.get("depends_on", {})) <= set(services) - {name}, name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in COMPOSE["volumes"], (name, volume)
    assert _compose_command("redis")[:1] == ["redis-server"]
    assert "command" not in services["postgres"]  # the image's own
    assert _compose_command("app") == ["python", "examples/celery/durable/01_basic_workflow.py"]
    for name in ("workflow-worker", "step-worker", "beat", "app"):
        env = services[name]["environment"]
        assert env["PYWORKFLOW_CELERY_BROKER"].startswith("redis://redis:")
        assert env["PYWORKFLOW_STORAGE_TYPE"] == "postgres"
        assert env["PYWORKFLOW_DISCOVER"] == "examples.celery.durable"


@pytest.mark.parametrize(
    ("service", "base"),
    [("workflow-worker", WORKFLOW_WORKER), ("step-worker", STEP_WORKER), ("beat", BEAT)],
)
def test_docker_compose_runs_the_cluster_commands(service: str, base: list[str]) -> None:
    """Each Celery service runs the test cluster's command, plus options Celery knows."""
    words = _compose_command(service)
    assert words[: 3 + len(base)] == ["celery", *CELERY[3:], *base], words
    extra = [w.split("=")[0] for w in words[3 + len(base) :] if w.startswith("-")]
    usage = subprocess.run(
        [*CELERY, base[0], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout
    for option in extra:
        assert re.search(rf"{re.escape(option)}\b", usage), f"{service}: unknown {option}"
