"""SQLite-only behaviour: pragmas, migrations, corrupt files, several OS processes.

The storage contract itself is checked by the shared conformance suite
(``TestSQLiteConformance`` at the bottom); these tests cover what only a file shared
between processes can get wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.base import CommitBatch, CorruptStorageError, StorageError
from pyworkflow.storage.schemas import RunStatus, Timer, WorkflowRun
from pyworkflow.storage.sql import MIGRATIONS, VERSION_TABLE, latest_version
from pyworkflow.storage.sqlite import SQLiteStorageBackend
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
ALL_VERSIONS = [m.version for m in MIGRATIONS]

# Child processes wait on a "go" file so that they really run at the same time.
PRELUDE = """
import asyncio, json, sys, time
from datetime import UTC, datetime
from pathlib import Path
from pyworkflow.storage.sqlite import SQLiteStorageBackend

def barrier(tag):
    Path(sys.argv[2], "ready-" + tag).touch()
    while not Path(sys.argv[2], "go").exists():
        time.sleep(0.001)
"""

APPEND = (
    PRELUDE
    + """
from pyworkflow.engine.events import Event, EventType

async def main(tag):
    storage = SQLiteStorageBackend(sys.argv[1])
    await storage.connect()
    barrier(tag)
    for i in range(100):
        event = Event(run_id="shared", type=EventType.CONTEXT_UPDATED, data={"by": tag, "i": i})
        await storage.record_event(event)
    await storage.disconnect()

asyncio.run(main(sys.argv[3]))
"""
)

CLAIM = (
    PRELUDE
    + """
async def main(tag):
    storage = SQLiteStorageBackend(sys.argv[1])
    await storage.connect()
    barrier(tag)
    claimed = []
    while True:
        batch = await storage.claim_due_timers(datetime.now(UTC), tag, 60.0, limit=3)
        if not batch:
            break
        claimed += [t.timer_id for t in batch]
    await storage.disconnect()
    print(json.dumps(claimed))

asyncio.run(main(sys.argv[3]))
"""
)

CONNECT = (
    PRELUDE
    + """
async def main(tag):
    barrier(tag)
    storage = SQLiteStorageBackend(sys.argv[1])
    await storage.connect()
    await storage.disconnect()

asyncio.run(main(sys.argv[3]))
"""
)

POLL = (
    PRELUDE
    + """
async def main(tag):
    storage = SQLiteStorageBackend(sys.argv[1])
    await storage.connect()
    barrier(tag)
    polls, slowest, seen = 0, 0.0, 0
    while not Path(sys.argv[2], "stop").exists():
        started = time.perf_counter()
        runs, _ = await storage.list_runs(limit=20)
        slowest = max(slowest, time.perf_counter() - started)
        polls += 1
        seen = max(seen, len(runs))
    await storage.disconnect()
    print(json.dumps({"polls": polls, "slowest": slowest, "seen": seen}))

asyncio.run(main(sys.argv[3]))
"""
)


def spawn(script: str, db: Path, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(db), str(db.parent), tag],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def start_together(db: Path, procs: dict[str, subprocess.Popen[str]]) -> None:
    def ready() -> bool:
        for tag, proc in procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{tag} exited early: {proc.communicate()[1]}")
        return all((db.parent / f"ready-{tag}").exists() for tag in procs)

    await eventually(ready, timeout=30, message="child processes never got ready")
    (db.parent / "go").touch()


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


@pytest.fixture
async def connected(tmp_path: Path) -> AsyncIterator[SQLiteStorageBackend]:
    storage = SQLiteStorageBackend(str(tmp_path / "wf.db"))
    await storage.connect()
    yield storage
    await storage.disconnect()


def _run(run_id: str, **kw: Any) -> WorkflowRun:
    return WorkflowRun(run_id=run_id, workflow_name="wf", status=RunStatus.RUNNING, **kw)


# --------------------------------------------------------------------------- lifecycle


async def test_constructor_and_connection_state(tmp_path: Path) -> None:
    storage = SQLiteStorageBackend(str(tmp_path / "nested" / "dir" / "wf.db"))
    assert isinstance(storage.db_path, Path)
    assert storage.db_path.parent.is_dir()
    assert storage._db is None and storage._initialized is False
    with pytest.raises(RuntimeError, match=r"Database not connected\. Call connect\(\) first\."):
        storage._ensure_connected()
    with pytest.raises(RuntimeError):
        await storage.get_run("x")
    assert await storage.health_check() is False
    await storage.connect()
    assert storage._db is not None and storage._initialized is True
    assert await storage.health_check() is True
    await storage.disconnect()
    assert storage._db is None and storage._initialized is False
    await storage.disconnect()  # idempotent


async def test_pragmas_in_effect(connected: SQLiteStorageBackend) -> None:
    db = connected._ensure_connected()

    async def pragma(name: str) -> object:
        [row] = await db.execute_fetchall(f"PRAGMA {name}")
        return row[0]

    assert await pragma("journal_mode") == "wal"
    assert await pragma("busy_timeout") == 30000
    assert await pragma("synchronous") == 2  # FULL
    # The reading connection cannot write, so a read can never hold the write lock.
    assert connected._read_db is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await connected._read_db.execute("CREATE TABLE nope (x)")


async def test_version_table_and_idempotent_reconnect(tmp_path: Path) -> None:
    path = str(tmp_path / "wf.db")
    first = SQLiteStorageBackend(path)
    await first.connect()
    await first.connect()  # a second call on the same instance is a no-op
    await first.create_run(_run("r1"))
    await first.disconnect()
    second = SQLiteStorageBackend(path)
    await second.connect()
    await second.disconnect()
    await second.connect()
    assert (await second.get_run("r1")) is not None
    await second.disconnect()
    with sqlite3.connect(path) as raw:
        rows = raw.execute(f"SELECT version, description FROM {VERSION_TABLE}").fetchall()
    assert [r[0] for r in rows] == list(range(1, latest_version() + 1))
    assert all(r[1] for r in rows)


async def test_pending_migrations_changes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert await SQLiteStorageBackend(str(missing)).pending_migrations() == ALL_VERSIONS
    assert not missing.exists()

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as raw:
        raw.execute("CREATE TABLE unrelated (x)")
    before = other.read_bytes()
    assert await SQLiteStorageBackend(str(other)).pending_migrations() == ALL_VERSIONS
    assert other.read_bytes() == before
    with sqlite3.connect(other) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
    assert VERSION_TABLE not in tables and "workflow_runs" not in tables

    storage = SQLiteStorageBackend(str(other))
    await storage.connect()
    assert await storage.pending_migrations() == []
    await storage.disconnect()
    assert await SQLiteStorageBackend(str(other)).pending_migrations() == []


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    storage = SQLiteStorageBackend(str(path))
    await storage.connect()
    await storage.disconnect()
    with sqlite3.connect(path) as raw:
        raw.execute(f"INSERT INTO {VERSION_TABLE} VALUES (999, 'future', '2999')")
    with pytest.raises(StorageError, match="newer"):
        await SQLiteStorageBackend(str(path)).connect()


@pytest.mark.parametrize("damage", ["garbage", "bad_first_page"])
async def test_corrupt_file_is_reported_and_left_alone(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "wf.db"
    if damage == "garbage":
        path.write_bytes(os.urandom(4096))
    else:
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE t (x)")
        data = bytearray(path.read_bytes())
        data[100:4096] = os.urandom(3996)  # valid header, unreadable schema page
        path.write_bytes(bytes(data))
    before = path.read_bytes()
    storage = SQLiteStorageBackend(str(path))
    with pytest.raises(CorruptStorageError) as info:
        await storage.connect()
    message = str(info.value)
    assert str(path) in message and "Move it aside" in message
    assert storage._db is None and storage._initialized is False
    with pytest.raises(CorruptStorageError):
        await storage.pending_migrations()
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


async def test_damage_found_later_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    storage = SQLiteStorageBackend(str(path))
    await storage.connect()
    for i in range(200):
        await storage.record_event(
            Event(run_id="big", type=EventType.CONTEXT_UPDATED, data={"pad": "x" * 500, "i": i})
        )
    await storage.disconnect()  # the last close checkpoints the WAL into the file
    data = bytearray(path.read_bytes())
    half = len(data) // 2
    data[half:] = os.urandom(len(data) - half)  # event pages, not the schema page
    path.write_bytes(bytes(data))
    await storage.connect()
    with pytest.raises(CorruptStorageError, match=r"wf\.db"):
        await storage.get_events("big")
    await storage.disconnect()


async def test_timestamps_order_and_round_trip(connected: SQLiteStorageBackend) -> None:
    plus5 = timezone(timedelta(hours=5))
    base = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    # 12:00:00.5 UTC written as 17:00:00.5+05:00 must sort after 12:00:00.123456 UTC.
    late = (base + timedelta(microseconds=376544)).astimezone(plus5)
    await connected.create_run(_run("early", created_at=base))
    await connected.create_run(_run("late", created_at=late))
    runs, _ = await connected.list_runs()
    assert [r.run_id for r in runs] == ["late", "early"]
    stored = await connected.get_run("late")
    assert stored is not None and stored.created_at == late
    window, _ = await connected.list_runs(start_time=base + timedelta(microseconds=1))
    assert [r.run_id for r in window] == ["late"]


# --------------------------------------------------------------------------- processes


@pytest.mark.slow
async def test_two_processes_connect_to_a_fresh_file(tmp_path: Path) -> None:
    db = tmp_path / "wf.db"
    procs = {f"p{i}": spawn(CONNECT, db, f"p{i}") for i in range(4)}
    await start_together(db, procs)
    for proc in procs.values():
        finish(proc)
    with sqlite3.connect(db) as raw:
        versions = raw.execute(f"SELECT version FROM {VERSION_TABLE}").fetchall()
    assert versions == [(v,) for v in range(1, latest_version() + 1)]


@pytest.mark.slow
async def test_two_processes_append_gap_free(tmp_path: Path) -> None:
    db = tmp_path / "wf.db"
    procs = {tag: spawn(APPEND, db, tag) for tag in ("a", "b")}
    await start_together(db, procs)
    for proc in procs.values():
        finish(proc)
    storage = SQLiteStorageBackend(str(db))
    await storage.connect()
    events = await storage.get_events("shared")
    await storage.disconnect()
    assert [e.sequence for e in events] == list(range(200))
    for tag in ("a", "b"):
        mine = [e.data["i"] for e in events if e.data["by"] == tag]
        assert mine == list(range(100))  # each writer's own order is kept


@pytest.mark.slow
async def test_two_processes_claim_each_timer_once(tmp_path: Path) -> None:
    db = tmp_path / "wf.db"
    storage = SQLiteStorageBackend(str(db))
    await storage.connect()
    due = datetime.now(UTC) - timedelta(seconds=5)
    for r in range(10):
        timers = [Timer(f"run{r}", "sleep", f"s{k}", due + timedelta(seconds=k)) for k in range(5)]
        await storage.commit(CommitBatch(run_id=f"run{r}", timers_upsert=timers))
    procs = {tag: spawn(CLAIM, db, tag) for tag in ("w1", "w2")}
    await start_together(db, procs)
    claimed = {tag: json.loads(finish(proc)) for tag, proc in procs.items()}
    first, second = set(claimed["w1"]), set(claimed["w2"])
    assert len(claimed["w1"]) == len(first) and len(claimed["w2"]) == len(second)
    assert not first & second
    assert len(first | second) == 50
    owners = {t.timer_id: t.claimed_by for t in await storage.list_timers()}
    assert all(owners[t] == "w1" for t in first) and all(owners[t] == "w2" for t in second)
    await storage.disconnect()


@pytest.mark.slow
async def test_polling_reader_never_blocks_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "wf.db"
    storage = SQLiteStorageBackend(str(db))
    await storage.connect()
    reader = {"reader": spawn(POLL, db, "reader")}
    await start_together(db, reader)
    slowest = 0.0
    for i in range(300):
        run_id = f"run{i // 3:03d}"
        event = Event(run_id=run_id, type=EventType.CONTEXT_UPDATED, data={"i": i})
        batch = CommitBatch(run_id=run_id, events=[event], expected_sequence=i % 3 - 1)
        if i % 3 == 0:
            batch.create_run = _run(run_id)
        started = time.perf_counter()
        await storage.commit(batch)
        slowest = max(slowest, time.perf_counter() - started)
    (tmp_path / "stop").touch()
    stats = json.loads(finish(reader["reader"]))
    await storage.disconnect()
    assert stats["polls"] > 0 and stats["seen"] > 0
    # Nothing ever waited on a lock: both sides stay far below the 30 s busy timeout.
    assert slowest < 2.0, slowest
    assert stats["slowest"] < 2.0, stats


# --------------------------------------------------------------------------- conformance

try:
    from pyworkflow.testing.conformance import StorageConformance
except ImportError:  # the shared suite is not there yet
    pass
else:

    class TestSQLiteConformance(StorageConformance):
        """The shared storage contract, on a fresh SQLite file per test."""

        @pytest.fixture
        async def storage(self, tmp_path: Path) -> AsyncIterator[SQLiteStorageBackend]:
            backend = SQLiteStorageBackend(str(tmp_path / "wf.db"))
            await backend.connect()
            yield backend
            await backend.disconnect()


async def test_two_backends_on_one_file_keep_their_locks(tmp_path: Path) -> None:
    """Regression: a second backend's connect() once opened and closed the file with
    plain Python I/O, dropping the POSIX locks of the first; another process closing
    its connection then deleted the WAL, and later commits went into a deleted file."""
    db = str(tmp_path / "shared.db")
    first, second = SQLiteStorageBackend(db), SQLiteStorageBackend(db)
    await first.connect()
    await second.connect()
    touch = (
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
        "c.execute('select 1 from sqlite_master').fetchall(); c.close()"
    )
    subprocess.run([sys.executable, "-c", touch, db], check=True)
    await first.commit(
        CommitBatch(run_id="r1", timers_upsert=[Timer("r1", "wake", "wake", datetime.now(UTC))])
    )
    count = (
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
        "print(c.execute('select count(*) from timers').fetchone()[0])"
    )
    seen = subprocess.run(
        [sys.executable, "-c", count, db], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert seen == "1"  # another process sees the commit
    await second.disconnect()
    await first.disconnect()


# --------------------------------------------------------------------------- one-hop commits


async def test_commit_is_one_hop_to_the_thread(connected: SQLiteStorageBackend) -> None:
    storage = connected
    """A commit of several statements is one round trip to aiosqlite's thread."""
    await storage.create_run(_run("hops"))
    db = storage._db
    assert db is not None
    hops = 0
    original = db._execute

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal hops
        hops += 1
        return await original(fn, *args, **kwargs)

    db._execute = counted  # type: ignore[method-assign]
    events = [Event(run_id="hops", type=EventType.CONTEXT_UPDATED, data={"i": i}) for i in range(3)]
    timer = Timer(run_id="hops", kind="sleep", key="s1", fire_at=datetime.now(UTC))
    await storage.commit(CommitBatch(run_id="hops", events=events, timers_upsert=[timer]))
    assert hops == 1
    assert [e.sequence for e in await storage.get_events("hops")] == [0, 1, 2]


async def test_cancelled_commits_leave_all_or_nothing(connected: SQLiteStorageBackend) -> None:
    storage = connected
    """Commits cancelled at every point land whole or not at all; the next one works."""
    await storage.create_run(_run("cancel"))
    for round_ in range(40):
        batch = CommitBatch(
            run_id="cancel",
            events=[
                Event(run_id="cancel", type=EventType.CONTEXT_UPDATED, data={"r": round_, "i": i})
                for i in range(2)
            ],
        )
        task = asyncio.ensure_future(storage.commit(batch))
        for _ in range(round_ % 4):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    events = await storage.get_events("cancel")
    assert [e.sequence for e in events] == list(range(len(events)))  # gap-free
    rounds = [e.data["r"] for e in events]
    assert all(rounds.count(r) == 2 for r in set(rounds))  # each batch whole or absent
    after = Event(run_id="cancel", type=EventType.CONTEXT_UPDATED, data={"last": True})
    await storage.commit(CommitBatch(run_id="cancel", events=[after]))
    assert (await storage.get_events("cancel"))[-1].data == {"last": True}
