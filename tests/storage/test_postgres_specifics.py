"""PostgreSQL-only behaviour: construction, the pool, migrations, and the constraints that
guard writers in separate sessions (each backend below has its own pool, so these are
real concurrent database sessions, not coroutines sharing one connection).

The storage contract itself is in test_postgres_conformance.py; dropped connections and
server restarts in test_postgres_faults.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from pyworkflow.engine.events import Event, EventType, create_hook_received_event
from pyworkflow.storage.base import CommitBatch, DuplicateEventError, HookUpdate, StorageError
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.schemas import Hook, HookStatus, RunStatus, Timer, WorkflowRun
from pyworkflow.storage.sql import MIGRATIONS, VERSION_TABLE
from tests.support import free_port

ALL_VERSIONS = [m.version for m in MIGRATIONS]


@asynccontextmanager
async def raw(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection, to look at the database behind the backend's back."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def backends(dsn: str, n: int, **kw: int) -> AsyncIterator[list[PostgresStorageBackend]]:
    stores = [PostgresStorageBackend(dsn=dsn, **kw) for _ in range(n)]
    await asyncio.gather(*(s.connect() for s in stores))
    try:
        yield stores
    finally:
        await asyncio.gather(*(s.disconnect() for s in stores))


async def sessions(dsn: str) -> int:
    """Open connections of pyworkflow backends to this test's database."""
    async with raw(dsn) as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'pyworkflow'"
        )
    return count


# --------------------------------------------------------------------------- construction


def test_defaults_and_dsn_building() -> None:
    storage = PostgresStorageBackend()
    assert (storage.host, storage.port, storage.user) == ("localhost", 5432, "pyworkflow")
    assert (storage.password, storage.database, storage.dsn) == ("", "pyworkflow", None)
    assert (storage.min_pool_size, storage.max_pool_size) == (1, 10)
    assert storage._pool is None and storage._initialized is False
    assert storage._build_dsn() == "postgresql://pyworkflow@localhost:5432/pyworkflow"
    with_password = PostgresStorageBackend(host="db", port=6543, user="u", password="pw")
    assert with_password._build_dsn() == "postgresql://u:pw@db:6543/pyworkflow"
    # Characters that mean something in a URL are escaped rather than corrupting it.
    odd = PostgresStorageBackend(user="a@b", password="p:/@?#%", database="my db")
    assert odd._build_dsn() == "postgresql://a%40b:p%3A%2F%40%3F%23%25@localhost:5432/my%20db"
    assert (
        PostgresStorageBackend(host="::1")._build_dsn().startswith("postgresql://pyworkflow@[::1]:")
    )
    assert "pw" not in repr(with_password) and repr(with_password).endswith("(db:6543/pyworkflow)")
    with pytest.raises(RuntimeError, match=r"Database not connected\. Call connect\(\) first\."):
        storage._ensure_connected()


@pytest.mark.parametrize("sizes", [(5, 2), (-1, 3), (0, 0)])
def test_bad_pool_sizes_are_refused(sizes: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="min_pool_size"):
        PostgresStorageBackend(min_pool_size=sizes[0], max_pool_size=sizes[1])


async def test_escaped_password_really_authenticates(pg_dsn: str) -> None:
    async with raw(pg_dsn) as conn:
        await conn.execute("CREATE ROLE \"odd@user\" LOGIN PASSWORD 'p:/@?#%'")
    database = pg_dsn.rsplit("/", 1)[1]
    port = int(pg_dsn.rsplit(":", 1)[1].split("/")[0])
    storage = PostgresStorageBackend(
        host="127.0.0.1", port=port, user="odd@user", password="p:/@?#%", database=database
    )
    assert await storage.pending_migrations() == ALL_VERSIONS  # the DSN it built works


async def test_unreachable_server_and_missing_database(pg_dsn: str) -> None:
    closed = PostgresStorageBackend(host="127.0.0.1", port=free_port(), password="hunter2")
    with pytest.raises(StorageError, match=r"Cannot connect to PostgreSQL at 127\.0\.0\.1") as info:
        await closed.connect()
    assert "hunter2" not in str(info.value) and closed._pool is None
    assert await closed.health_check() is False
    missing = PostgresStorageBackend(dsn=pg_dsn.rsplit("/", 1)[0] + "/no_such_db")
    with pytest.raises(StorageError, match="createdb 'no_such_db'"):
        await missing.connect()


# --------------------------------------------------------------------------- pool


async def test_pool_sizes_are_what_the_server_sees(pg_dsn: str) -> None:
    storage = PostgresStorageBackend(dsn=pg_dsn, min_pool_size=2, max_pool_size=3)
    await storage.connect()
    await storage.connect()  # idempotent: still one pool
    assert await sessions(pg_dsn) == 2  # min_pool_size connections open at once

    async def hold() -> None:
        async with storage._reader() as conn:
            await conn.fetch_one("SELECT pg_sleep(0.2)")

    started = time.perf_counter()
    task = asyncio.gather(*(hold() for _ in range(6)))
    await asyncio.sleep(0.1)
    assert await sessions(pg_dsn) == 3  # never more than max_pool_size
    await task
    # Six 0.2 s queries over three connections take two rounds.
    assert time.perf_counter() - started >= 0.39
    assert await storage.health_check() is True
    await storage.disconnect()
    await storage.disconnect()
    assert await sessions(pg_dsn) == 0 and storage._initialized is False


# --------------------------------------------------------------------------- migrations


async def test_pending_migrations_changes_nothing(pg_dsn: str) -> None:
    async with raw(pg_dsn) as conn:
        await conn.execute("CREATE TABLE unrelated (x int)")
    fresh = PostgresStorageBackend(dsn=pg_dsn)
    assert await fresh.pending_migrations() == ALL_VERSIONS
    async with raw(pg_dsn) as conn:
        tables = {
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert tables == {"unrelated"}
    await fresh.connect()
    assert await fresh.pending_migrations() == []
    await fresh.disconnect()
    async with raw(pg_dsn) as conn:
        rows = await conn.fetch(f"SELECT version, description FROM {VERSION_TABLE} ORDER BY 1")
    assert [r[0] for r in rows] == ALL_VERSIONS and all(r[1] for r in rows)


async def test_processes_connecting_at_once_migrate_once(pg_dsn: str) -> None:
    # Eight pools race on an empty database; the advisory lock lets one migrate.
    async with backends(pg_dsn, 8) as stores:
        assert all(s._initialized for s in stores)
        await stores[0].create_run(WorkflowRun("r1", "wf", RunStatus.PENDING))
        assert all([await s.get_run("r1") is not None for s in stores])
    async with raw(pg_dsn) as conn:
        versions = [r[0] for r in await conn.fetch(f"SELECT version FROM {VERSION_TABLE}")]
    assert sorted(versions) == ALL_VERSIONS


async def test_newer_schema_is_refused(pg_dsn: str) -> None:
    storage = PostgresStorageBackend(dsn=pg_dsn)
    await storage.connect()
    await storage.disconnect()
    async with raw(pg_dsn) as conn:
        await conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES (999, 'future', now())")
    with pytest.raises(StorageError, match="newer"):
        await PostgresStorageBackend(dsn=pg_dsn).connect()


# --------------------------------------------------------------------------- constraints


async def test_constraints_are_in_the_database(pg_dsn: str) -> None:
    storage = PostgresStorageBackend(dsn=pg_dsn)
    await storage.connect()
    await storage.record_event(create_hook_received_event("r", "h1", '"p"'))
    await storage.disconnect()
    insert = (
        "INSERT INTO events (run_id, sequence, event_id, type, timestamp, data, dedup_key)"
        " VALUES ('r', $1, $2, 'hook.received', now(), '{}', $3)"
    )
    async with raw(pg_dsn) as conn:
        # Whoever writes, even bypassing pyworkflow: a sequence is taken once...
        with pytest.raises(asyncpg.UniqueViolationError) as seq:
            await conn.execute(insert, 0, "evt_x", None)
        # ...and a hook's outcome is recorded once.
        with pytest.raises(asyncpg.UniqueViolationError) as dup:
            await conn.execute(insert, 1, "evt_y", "hook.outcome:h1")
    assert seq.value.constraint_name == "events_sequence_uq"
    assert dup.value.constraint_name == "events_dedup_uq"


async def test_appends_from_many_sessions_are_gap_free(pg_dsn: str) -> None:
    async with backends(pg_dsn, 4) as stores:

        async def append(slot: int) -> None:
            for i in range(50):
                event = Event(run_id="shared", type=EventType.CONTEXT_UPDATED, data={"s": slot})
                event.data["i"] = i
                await stores[slot].record_event(event)

        await asyncio.gather(*(append(slot) for slot in range(4)))
        events = await stores[0].get_events("shared")
    assert [e.sequence for e in events] == list(range(200))
    for slot in range(4):  # each writer's own order is kept
        assert [e.data["i"] for e in events if e.data["s"] == slot] == list(range(50))


async def test_hook_resume_is_a_compare_and_set(pg_dsn: str) -> None:
    async with backends(pg_dsn, 4) as stores:
        hook = Hook(hook_id="h1", run_id="r", token="r:secret")
        await stores[0].commit(CommitBatch("r", hooks_create=[hook]))

        async def deliver(n: int) -> int | None:
            batch = CommitBatch(
                "r",
                events=[create_hook_received_event("r", "h1", f'"payload {n}"')],
                hook_updates=[HookUpdate("h1", HookStatus.RECEIVED, f'"payload {n}"')],
            )
            try:
                await stores[n % 4].commit(batch)
            except DuplicateEventError:
                return None
            return n

        outcomes = await asyncio.gather(*(deliver(n) for n in range(20)))
        winners = [n for n in outcomes if n is not None]
        assert len(winners) == 1  # exactly one delivery resumed the hook
        stored = await stores[0].get_hook("h1", "r")
        events = await stores[0].get_events("r")
    assert stored is not None and stored.status is HookStatus.RECEIVED
    assert stored.payload == f'"payload {winners[0]}"'  # the winner's, nobody else's
    assert [e.data.get("payload") for e in events] == [f'"payload {winners[0]}"']


async def test_timer_claims_skip_locked_rows(pg_dsn: str) -> None:
    now = datetime.now(UTC)
    async with backends(pg_dsn, 6) as stores:
        timers = [Timer(f"run{i % 30}", "sleep", f"s{i}", now - timedelta(i)) for i in range(300)]
        for r in range(30):
            own = [t for t in timers if t.run_id == f"run{r}"]
            await stores[0].commit(CommitBatch(f"run{r}", timers_upsert=own))

        async def claimer(slot: int) -> list[str]:
            got: list[str] = []
            while batch := await stores[slot].claim_due_timers(now, f"w{slot}", 60, limit=7):
                got += [t.timer_id for t in batch]
            return got

        claims = await asyncio.gather(*(claimer(slot) for slot in range(6)))
        flat = [timer_id for got in claims for timer_id in got]
        assert sorted(flat) == sorted(t.timer_id for t in timers)  # each once, none lost

        # A claimer does not wait for rows another transaction holds: it takes others.
        fresh = [Timer("lock", "sleep", f"k{i}", now) for i in range(10)]
        await stores[0].commit(CommitBatch("lock", timers_upsert=fresh))
        async with raw(pg_dsn) as conn, conn.transaction():
            await conn.execute(
                "SELECT 1 FROM timers WHERE run_id = 'lock' AND key IN ('k0', 'k1', 'k2')"
                " FOR UPDATE"
            )
            started = time.perf_counter()
            batch = await stores[1].claim_due_timers(now, "w1", 60)
            assert time.perf_counter() - started < 1.0
        assert sorted(t.key for t in batch) == [f"k{i}" for i in range(3, 10)]
