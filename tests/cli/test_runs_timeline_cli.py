"""``pyworkflow runs timeline``: real runs on SQLite, the CLI as a subprocess, plus the
builder on hand-made event logs for the cases a quick test cannot wait for (a late sleep,
an expired hook)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pyworkflow import start
from pyworkflow.cli.timeline import build_timeline
from pyworkflow.engine import events as ev
from pyworkflow.engine.cancel_api import cancel_workflow
from pyworkflow.storage.schemas import RunStatus, WorkflowRun
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.cli import runs_app
from tests.cli.test_runs_cli import cli, cli_json, invoke, invoke_json, make

TOP = {"run_id", "workflow_name", "status", "duration", "items"}
ITEM = {"kind", "name", "status", "started_at", "ended_at", "duration", "attempts", "detail"}
ITEM |= {"offset"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A finished tour, a chain, a failed run, a cancelled sleeper and a waiting run."""
    db = str(tmp_path_factory.mktemp("timeline") / "timeline.db")

    async def build(store: SQLiteStorageBackend) -> dict[str, str]:
        tour = await runs_app.run_tour(store)
        (child,) = await store.get_children(tour)
        first = await start(runs_app.loop, 0, durable=True, storage=store)
        with pytest.raises(Exception, match="card declined"):
            await start(runs_app.doomed, durable=True, storage=store)
        (doomed,), _ = await store.list_runs(query="runs_app_doomed")
        napper = await start(runs_app.napper, durable=True, storage=store)
        await cancel_workflow(napper, reason="changed my mind", wait=True, storage=store)
        waiter = await start(runs_app.waiter, durable=True, storage=store)
        return {
            "tour": tour,
            "child": child.run_id,
            "first": first,
            "doomed": doomed.run_id,
            "napper": napper,
            "waiter": waiter,
        }

    return {"db": db, **make(db, build)}


def by_kind(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for item in data["items"] if item["kind"] == kind]


def test_tour_timeline_json(world: dict[str, str]) -> None:
    data = cli_json(world["db"], "runs", "timeline", world["tour"])
    assert set(data) == TOP and all(set(i) == ITEM for i in data["items"])
    assert (data["run_id"], data["workflow_name"]) == (world["tour"], "runs_app_tour")
    assert data["status"] == "completed" and data["duration"] > 0
    kinds = [(i["kind"], i["name"]) for i in data["items"]]
    assert kinds == [
        ("step", "runs_app_double"),
        ("step", "runs_app_flaky"),
        ("sleep", "sleep_1_0.2s"),
        ("hook", "approval"),
        ("child", "runs_app_kid"),
    ]
    double, flaky = by_kind(data, "step")
    assert (double["attempts"], double["detail"]["retries"], double["status"]) == (
        1,
        0,
        "completed",
    )
    assert (flaky["attempts"], flaky["detail"]["retries"], flaky["status"]) == (2, 1, "completed")
    assert flaky["detail"]["error"] == "ValueError: first try fails"
    # the retried step spans both attempts and the retry delay (0.05 s) between them
    assert flaky["duration"] >= 0.05
    (nap,) = by_kind(data, "sleep")
    assert nap["status"] == "completed" and nap["duration"] >= 0.2
    assert nap["detail"]["duration_seconds"] == 0.2
    assert nap["detail"]["late_by"] >= 0 and isinstance(nap["detail"]["late"], bool)
    (approval,) = by_kind(data, "hook")
    assert approval["status"] == "received"
    assert approval["detail"]["waited"] == approval["duration"]
    (kid,) = by_kind(data, "child")
    assert kid["detail"]["child_run_id"] == world["child"]
    assert (kid["status"], kid["detail"]["child_status"]) == ("completed", "completed")
    offsets = [i["offset"] for i in data["items"]]
    assert offsets == sorted(offsets) and offsets[0] >= 0
    assert all(i["offset"] + i["duration"] <= data["duration"] + 0.002 for i in data["items"])


def test_tour_timeline_table(world: dict[str, str]) -> None:
    narrow = cli(world["db"], "runs", "timeline", world["tour"], output="table")
    assert narrow.returncode == 0, narrow.stderr
    assert "run total" in narrow.stdout and "█" in narrow.stdout
    assert "runs_app_flaky" in narrow.stdout and "+0ms" in narrow.stdout
    code, wide = invoke(world["db"], "runs", "timeline", world["tour"])
    assert code == 0
    assert "retried after ValueError: first try fails" in wide
    assert "Detail" in wide and "waited" in wide and world["child"] in wide
    code, plain = invoke(world["db"], "--output", "plain", "runs", "timeline", world["tour"])
    assert code == 0 and plain.splitlines()[0] == "step runs_app_double completed"


def test_continue_as_new_is_a_point(world: dict[str, str]) -> None:
    data = invoke_json(world["db"], "runs", "timeline", world["first"])
    assert data["status"] == "continued_as_new"
    (item,) = data["items"]
    assert item["kind"] == "continue_as_new" and item["duration"] == 0
    middle = item["detail"]["new_run_id"]
    chain = invoke_json(world["db"], "runs", "chain", world["first"])
    assert chain[1]["run_id"] == middle == item["name"]


def test_failed_run(world: dict[str, str]) -> None:
    data = invoke_json(world["db"], "runs", "timeline", world["doomed"])
    assert data["status"] == "failed" and data["duration"] is not None
    step, failure = data["items"]
    assert (step["kind"], step["status"], step["attempts"]) == ("step", "failed", 1)
    assert "card declined" in step["detail"]["error"]
    assert failure["kind"] == "failure" and "card declined" in failure["detail"]["error"]


def test_cancelled_sleeper(world: dict[str, str]) -> None:
    data = invoke_json(world["db"], "runs", "timeline", world["napper"])
    assert data["status"] == "cancelled"
    nap, cancellation = data["items"]
    assert (nap["kind"], nap["status"]) == ("sleep", "cancelled")
    assert nap["detail"]["late_by"] is None and nap["ended_at"] is not None
    assert (cancellation["kind"], cancellation["status"]) == ("cancellation", "cancelled")
    assert cancellation["detail"]["reason"] == "changed my mind"


def test_waiting_run(world: dict[str, str]) -> None:
    data = invoke_json(world["db"], "runs", "timeline", world["waiter"])
    assert (data["status"], data["duration"]) == ("suspended", None)
    (waiting,) = data["items"]
    assert (waiting["kind"], waiting["status"], waiting["ended_at"]) == ("hook", "waiting", None)
    assert waiting["detail"]["expires_at"] is not None
    code, out = invoke(world["db"], "runs", "timeline", world["waiter"])
    assert code == 0 and "still suspended" in out and "░" in out


def _log(*specs: tuple[float, ev.Event]) -> list[ev.Event]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    for sequence, (at, event) in enumerate(specs):
        event.sequence, event.timestamp = sequence, t0 + timedelta(seconds=at)
        events.append(event)
    return events


def test_builder_late_sleep_and_expired_hook() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    log = _log(
        (0, ev.create_workflow_started_event("r", "w", "[]", "{}")),
        (0, ev.create_sleep_started_event("r", "s1", 10, t0 + timedelta(seconds=10))),
        (15, ev.create_sleep_completed_event("r", "s1")),
        (15, ev.create_sleep_started_event("r", "s2", 5, t0 + timedelta(seconds=20))),
        (20.2, ev.create_sleep_completed_event("r", "s2")),
        (21, ev.create_hook_created_event("r", "h1", name="approval")),
        (81, ev.create_hook_expired_event("r", "h1")),
        (81, ev.create_workflow_completed_event("r", None, "w")),
    )
    run = WorkflowRun(run_id="r", workflow_name="w", status=RunStatus.COMPLETED)
    timeline = build_timeline(run, log)
    late, on_time, approval = timeline.items
    assert (late.detail["late_by"], late.detail["late"]) == (5.0, True)
    assert (on_time.detail["late_by"], on_time.detail["late"]) == (0.2, False)
    assert (approval.status, approval.detail["waited"]) == ("expired", 60.0)
    assert timeline.duration == 81.0


def test_unknown_run_in_a_subprocess(world: dict[str, str], tmp_path: Path) -> None:
    done = cli(world["db"], "runs", "timeline", "run_missing", cwd=tmp_path)
    assert done.returncode == 1 and "Workflow run not found: run_missing" in done.stderr
