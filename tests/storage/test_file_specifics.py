"""File-backend-only behaviour: layout, corrupt files, crash recovery, several OS processes.

The storage contract itself is checked by the conformance suite
(``test_conformance_memory_file.py``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pyworkflow.engine.events import Event, EventType, create_step_completed_event
from pyworkflow.storage.base import CommitBatch, CorruptStorageError, RunUpdate
from pyworkflow.storage.file import FileStorageBackend
from pyworkflow.storage.file_store import FileStore
from pyworkflow.storage.schemas import Hook, RunStatus, Timer, WorkflowRun

ROOT = Path(__file__).resolve().parents[2]


def _run(run_id: str = "run_1") -> WorkflowRun:
    return WorkflowRun(run_id=run_id, workflow_name="wf", status=RunStatus.RUNNING)


def _started(run_id: str, n: int) -> Event:
    return Event(run_id=run_id, type=EventType.STEP_STARTED, data={"n": n})


async def test_layout_and_persistence(tmp_path: Path) -> None:
    store = FileStorageBackend(str(tmp_path))
    await store.create_run(_run())
    await store.record_event(_started("run_1", 0))
    await store.set_cancellation_flag("run_1")
    await store.create_hook(Hook(hook_id="h1", run_id="run_1", token="run_1:tok"))
    assert (tmp_path / "runs" / "run_1.json").is_file()
    assert (tmp_path / "runs" / "run_1.cancel").is_file()
    assert (tmp_path / "events" / "run_1.jsonl").is_file()
    assert (tmp_path / "hooks" / "run_1" / "h1.json").is_file()
    assert (tmp_path / "_token_index.json").is_file()
    assert list((tmp_path / ".journal").iterdir()) == []
    reopened = FileStorageBackend(str(tmp_path))  # e.g. another process
    assert await reopened.get_run("run_1") == await store.get_run("run_1")
    assert [e.sequence for e in await reopened.get_events("run_1")] == [0]
    assert await reopened.get_hook_by_token("run_1:tok") is not None


async def test_unsafe_ids_stay_inside_base_path(tmp_path: Path) -> None:
    base = tmp_path / "data"
    store = FileStorageBackend(str(base))
    for run_id in ("../escape", "a/b", "x:y", ".hidden", ""):
        run = _run(run_id)
        await store.create_run(run)
        await store.record_event(Event(run_id=run_id or "empty", type=EventType.STEP_STARTED))
        assert await store.get_run(run_id) == run
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    page, _ = await store.list_runs()
    assert sorted(r.run_id for r in page) == sorted(["../escape", "a/b", "x:y", ".hidden", ""])


@pytest.mark.parametrize("content", ['{"run_id": "run_1", "workflow_na', "garbage", "[1, 2]", "{}"])
async def test_corrupt_run_file_names_path_and_fix(tmp_path: Path, content: str) -> None:
    store = FileStorageBackend(str(tmp_path))
    await store.create_run(_run())
    path = tmp_path / "runs" / "run_1.json"
    path.write_text(content)
    for call in (store.get_run("run_1"), store.list_runs()):
        with pytest.raises(CorruptStorageError) as info:
            await call
        message = str(info.value)
        assert str(path) in message and "backup" in message and "delete" in message


async def test_corrupt_event_line_names_path_and_line(tmp_path: Path) -> None:
    store = FileStorageBackend(str(tmp_path))
    for n in range(3):
        await store.record_event(_started("run_1", n))
    path = tmp_path / "events" / "run_1.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + '{"run_id": "run_1", "ty\n' + lines[2])
    with pytest.raises(CorruptStorageError) as info:
        await store.get_events("run_1")
    assert f"{path}, line 2" in str(info.value) and "backup" in str(info.value)
    with pytest.raises(CorruptStorageError):  # writers refuse to append after damage too
        await store.record_event(_started("run_1", 3))


async def test_half_written_last_line_is_ignored_then_cut(tmp_path: Path) -> None:
    store = FileStorageBackend(str(tmp_path))
    await store.record_event(_started("run_1", 0))
    path = tmp_path / "events" / "run_1.jsonl"
    with path.open("a") as handle:
        handle.write('{"event_id": "evt_torn", "run_id": "run_1"')  # a crash mid-append
    assert [e.sequence for e in await store.get_events("run_1")] == [0]
    event = _started("run_1", 1)
    await FileStorageBackend(str(tmp_path)).record_event(event)
    assert event.sequence == 1
    assert [e.sequence for e in await store.get_events("run_1")] == [0, 1]
    assert "evt_torn" not in path.read_text()


async def test_crashed_commit_is_finished_from_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStorageBackend(str(tmp_path))
    await store.create_run(_run())
    real_run_ops = FileStore._run_ops

    def crash_after_first(self: FileStore, ops: list[dict[str, Any]]) -> None:
        real_run_ops(self, ops[:1])
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(FileStore, "_run_ops", crash_after_first)
    fire_at = datetime.now(UTC)
    batch = CommitBatch(
        "run_1",
        events=[create_step_completed_event("run_1", "s1", "1", "s"), _started("run_1", 2)],
        run_update=RunUpdate(status=RunStatus.SUSPENDED),
        timers_upsert=[Timer(run_id="run_1", kind="sleep", key="z", fire_at=fire_at)],
    )
    with pytest.raises(KeyboardInterrupt):
        await store.commit(batch)
    assert list((tmp_path / ".journal").iterdir()) != []
    monkeypatch.undo()
    survivor = FileStorageBackend(str(tmp_path))
    assert [e.sequence for e in await survivor.get_events("run_1")] == [0, 1]
    run = await survivor.get_run("run_1")
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert [t.key for t in await survivor.list_timers()] == ["z"]
    assert list((tmp_path / ".journal").iterdir()) == []


async def test_replayed_journal_keeps_a_claim_made_after_the_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStorageBackend(str(tmp_path))
    await store.create_run(_run())
    real_run_ops = FileStore._run_ops

    def crash_after_two(
        self: FileStore, ops: list[dict[str, Any]], recovering: bool = False
    ) -> None:
        real_run_ops(self, ops[:2])  # the run row and the timer, not the event
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(FileStore, "_run_ops", crash_after_two)
    now = datetime.now(UTC)
    batch = CommitBatch(
        "run_1",
        events=[_started("run_1", 0)],
        run_update=RunUpdate(status=RunStatus.SUSPENDED),
        timers_upsert=[Timer(run_id="run_1", kind="sleep", key="z", fire_at=now)],
    )
    with pytest.raises(KeyboardInterrupt):
        await store.commit(batch)
    monkeypatch.undo()
    scheduler = FileStorageBackend(str(tmp_path))
    assert len(await scheduler.claim_due_timers(now, "s1", 60)) == 1
    assert [e.sequence for e in await scheduler.get_events("run_1")] == [0]  # replayed
    [timer] = await scheduler.list_timers()
    assert timer.claimed_by == "s1"
    assert await scheduler.claim_due_timers(now, "s2", 60) == []


# --------------------------------------------------------------------------- processes

PRELUDE = """
import asyncio, json, sys, time
from datetime import datetime
from pathlib import Path
from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.file import FileStorageBackend

base, sync, tag = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
(sync / ("ready-" + tag)).touch()
while not (sync / "go").exists():
    time.sleep(0.005)
store = FileStorageBackend(base)
"""

APPEND = """
async def main():
    for i in range(100):
        await store.record_event(Event(run_id="shared", type=EventType.STEP_STARTED,
                                       data={"who": tag, "i": i}))
asyncio.run(main())
"""

CLAIM = """
async def main():
    now, got = datetime.fromisoformat(sys.argv[4]), []
    while batch := await store.claim_due_timers(now, tag, 300, limit=3):
        got.extend(t.timer_id for t in batch)
    print(json.dumps(got))
asyncio.run(main())
"""


def _run_together(script: str, base: Path, sync: Path, *extra: str) -> list[str]:
    """Run two processes of ``script`` that start working at the same moment."""
    sync.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PRELUDE + script, str(base), str(sync), tag, *extra],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    deadline = time.monotonic() + 30
    while not all((sync / f"ready-{t}").exists() for t in ("a", "b")):
        assert time.monotonic() < deadline, "children did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    (sync / "go").touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


@pytest.mark.slow
async def test_two_processes_append_gap_free(tmp_path: Path) -> None:
    base = tmp_path / "data"
    await asyncio.to_thread(_run_together, APPEND, base, tmp_path / "sync")
    events = await FileStorageBackend(str(base)).get_events("shared")
    assert [e.sequence for e in events] == list(range(200))
    for tag in ("a", "b"):
        assert [e.data["i"] for e in events if e.data["who"] == tag] == list(range(100))


@pytest.mark.slow
async def test_two_processes_claim_each_timer_once(tmp_path: Path) -> None:
    base = tmp_path / "data"
    store = FileStorageBackend(str(base))
    now = datetime.now(UTC)
    for run in range(10):
        timers = [Timer(f"run_{run}", "sleep", f"s{i}", now) for i in range(5)]
        await store.commit(CommitBatch(f"run_{run}", timers_upsert=timers))
    outputs = await asyncio.to_thread(
        _run_together, CLAIM, base, tmp_path / "sync", now.isoformat()
    )
    claimed = [timer_id for out in outputs for timer_id in json.loads(out)]
    assert len(claimed) == 50
    assert sorted(claimed) == sorted(t.timer_id for t in await store.list_timers())
