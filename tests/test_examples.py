"""Every script under examples/local runs as a user would run it, and says what it shows.

Each example runs in its own process from the repository root, with ``TMPDIR`` pointed
at the test's temporary directory so the files it writes are cleaned up with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples" / "local"

# example -> lines (or parts of lines) its output must contain
EXPECTED: dict[str, list[str]] = {
    "durable/01_basic_workflow.py": [
        "status:   completed",
        "result:   {'charge_id': 'charge_A-100', 'receipt': 'receipt for A-100 (charge_A-100)'}",
    ],
    "durable/02_file_storage.py": [
        "welcome mail sent to user7@example.com",
        "read back with a new backend object: status=completed",
    ],
    "durable/03_retries.py": [
        "after the first failure the run is suspended",
        "result: 'invoice-7 synced on call 3'",
        "call_flaky_api ran 3 times",
        "FatalError, not retried",
    ],
    "durable/04_long_running.py": [
        "[1] after start(): suspended",
        "[2] resume(run_id) -> completed",
    ],
    "durable/05_event_log.py": [
        "returned 'report-42.pdf'",
        "step.retrying",
        "sleep.completed      sleep_1_0.5s",
    ],
    "durable/06_idempotency.py": [
        "(same run: True)",
        "charge step ran: p-1 x1, p-2 x1",
    ],
    "durable/07_hooks.py": [
        "[1] after start(): suspended",
        "[1] bad payload rejected: ",
        "[1] after the bad payload: suspended",
        "[1] forged token: HookNotFoundError",
        "[1] result: 'E-1 paid, approved by grace'",
        "[1] second resume: HookAlreadyReceivedError",
        "workflow: nobody answered E-2 in time, escalating",
        "[2] result: 'E-2 escalated to the finance team'",
        "[2] hook status: expired",
        "[2] a late answer: HookExpiredError",
    ],
    "durable/08_cancellation.py": [
        "cancelled HT-T-7\n    compensation: cancelled FL-T-7",
        "[1] status: cancelled",
        "cleanup_completed=True",
        "[2] status right after cancel_workflow: cancelled",
        "[2] cancelling it again -> False",
        "[3] status: cancelled after",
    ],
    "durable/09_child_workflows.py": [
        "after start(): parent suspended",
        "    child arrange_shipping: suspended",
        "'tracking': 'TRK-A-17'",
        "'gift_card': 'none (FatalError: gift card service rejected A-17)'",
        "arrange_shipping [completed] depth=1 -> 'TRK-A-17'",
        "issue_gift_card [failed] depth=1",
        "get_parent(charge_payment) is the order run: True",
        "child_workflow.failed",
    ],
    "durable/10_child_workflow_patterns.py": [
        "[1] all 20 were running at the same moment: True",
        f"[1] results in call order: {list(range(20))}",
        "[2] after start(): parent suspended",
        "'mails': ['welcome mail sent to ada', 'tips mail sent to ada', 'survey mail sent to ada']",
        "[3] parent result: 'upgraded (ChildWorkflowFailedError: Cancelled: ",
        "[3] child remind_later[\"grace\"]: cancelled\n[3]     reason: 'user upgraded'",
        '[3] child remind_later["grace-manager"]: cancelled',
        "reason: 'Parent workflow run_",
        "level 3 stops: MaxNestingDepthError",
        "nest[3] depth=3",
    ],
    "durable/11_continue_as_new.py": [
        "runs in the chain: 100",
        "events per run: max 202",
        "statuses: first continued_as_new, last completed",
        "start() returned the first run: True",
        "same chain read from its middle run: True",
        "final result: {'cursor': 10000, 'items_seen': 29994}",
    ],
    "durable/12_schedules.py": [
        "[1] activate_scheduled_workflows -> ['auto_morning_report']; a second time -> []",
        "last_run_id is that run: True, next slot unchanged: True",
        "[2] Cron: 30 2 * * * (Europe/Berlin)",
        "[2]   Sun 2026-03-29 03:00 +0200  = 01:00 UTC",
        "[2]   Sun 2026-10-25 02:30 +0200  = 00:30 UTC\n[2]   Mon 2026-10-26 02:30 +0100",
        "[3] January 1-30, daily at 06:00: 30 runs, 30 completed",
        "[3] backfilled again: the same 30 run ids, nothing new: True",
        "[4] paused (paused) for 2s: no run meanwhile: True",
        "[4] resumed (active): fired again within",
        "[4] deleted: status deleted, no run since: True",
        "[5] run 5 at +",
        "[5] counters: total_runs=5 successful_runs=5 failed_runs=0 skipped_runs=0",
        "[6] 9 slots: every one a run or a skip",
        "[6] one schedule.skipped event per skipped slot: True",
        "[6] runs never overlapped: True",
    ],
    "durable/13_crash_recovery.py": [
        "killed inside print_label; run run_",
        "resumed by process",
        "['stock reserved for order-7', 'label printed for order-7']",
        "reserve_stock body ran 1x",
        "print_label body ran 2x",
        "invariants: runs=1 terminal=1 resumable=0 violations=0",
    ],
    "transient/01_quick_tasks.py": [
        "published 3 thumbnails",
        "3 steps of 0.2s in parallel",
    ],
    "transient/02_retries.py": [
        "after 3 attempts",
        "gave up after 4 attempts",
        "not retried: unparseable rates",
    ],
    "transient/03_sleep.py": [
        "sleep('1s') took 1.0",
        "tea woke after 0.5s",
    ],
}


def test_every_example_is_listed() -> None:
    found = {p.relative_to(EXAMPLES_DIR).as_posix() for p in EXAMPLES_DIR.rglob("*.py")}
    assert found == set(EXPECTED), "add new examples to EXPECTED in tests/test_examples.py"


def test_every_example_is_described() -> None:
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    missing = [name for name in EXPECTED if Path(name).name not in readme]
    assert not missing, f"describe these in examples/README.md: {missing}"


@pytest.mark.slow
@pytest.mark.timeout(90)  # the subprocess timeout (60 s) fires first, with its output
@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs(example: str, tmp_path: Path) -> None:
    default_data = ROOT / "pyworkflow_data"
    had_default_data = default_data.exists()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / example)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    report = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, report
    for expected in EXPECTED[example]:
        assert expected in done.stdout, f"missing {expected!r}\n{report}"
    assert "Traceback" not in done.stderr, report
    # Examples must not leave the embedded default database in the checkout.
    assert default_data.exists() == had_default_data
    assert elapsed < 30, f"{example} took {elapsed:.1f}s"
