"""Dropped connections and server restarts: the pool recovers and no write is lost or doubled.

Faults are real: sessions are ended with ``pg_terminate_backend``, the server is stopped,
restarted and SIGKILLed. To cut a transaction at a chosen point, the test makes it wait
(on the run's advisory lock, or in a deferred trigger at COMMIT) and terminates it there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.base import CommitBatch
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.postgres_dialect import PostgresDialect
from pyworkflow.storage.schemas import RunStatus, Timer, WorkflowRun
from pyworkflow.storage.sql.core import ConnectionLostError
from tests.servers import PostgresServer
from tests.storage.test_postgres_specifics import raw, sessions
from tests.support import eventually

pytestmark = pytest.mark.slow

LOCK_RUN = PostgresDialect().render(PostgresDialect.lock_run_sql or "")


def marker(run_id: str, n: int = 0) -> Event:
    return Event(run_id=run_id, type=EventType.CONTEXT_UPDATED, data={"n": n})


@pytest.fixture
async def storage(pg_dsn: str) -> AsyncIterator[PostgresStorageBackend]:
    backend = PostgresStorageBackend(dsn=pg_dsn, min_pool_size=2)
    await backend.connect()
    yield backend
    await backend.disconnect()


async def terminate(dsn: str, where: str = "true") -> int:
    """End the backend's sessions on the server side (matching ``where``); how many."""
    async with raw(dsn) as conn:
        ended: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'pyworkflow'"
            f" AND {where}"
        )
    return ended


async def waiting_on(dsn: str, where: str) -> bool:
    async with raw(dsn) as conn:
        found: bool = await conn.fetchval(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()"
            f" AND application_name = 'pyworkflow' AND {where}"
        )
    return found


async def test_terminated_connections_are_replaced(
    storage: PostgresStorageBackend, pg_dsn: str
) -> None:
    await storage.create_run(WorkflowRun("r1", "wf", RunStatus.RUNNING))
    assert await terminate(pg_dsn) == 2  # both pooled connections
    assert await storage.get_run("r1") is not None
    await storage.record_event(marker("r1"))
    await storage.commit(CommitBatch("r1", events=[marker("r1", 1)], expected_sequence=0))
    assert [e.sequence for e in await storage.get_events("r1")] == [0, 1]
    assert await sessions(pg_dsn) >= 1


async def test_operations_wait_for_a_stopped_server(
    storage: PostgresStorageBackend, postgres_server: PostgresServer
) -> None:
    await storage.create_run(WorkflowRun("r1", "wf", RunStatus.RUNNING))
    await asyncio.to_thread(postgres_server.stop)
    due = datetime.now(UTC)
    pending: list[asyncio.Task[Any]] = [
        asyncio.create_task(coro)
        for coro in (
            storage.get_run("r1"),
            storage.record_event(marker("r1", 0)),
            storage.commit(CommitBatch("r2", events=[marker("r2")], expected_sequence=-1)),
            storage.commit(CommitBatch("r3", timers_upsert=[Timer("r3", "sleep", "s", due)])),
            storage.acquire_run_lease("r1", "me", 30, due),
        )
    ]
    await asyncio.sleep(0.4)
    assert not any(task.done() for task in pending)  # waiting, not failing
    await asyncio.to_thread(postgres_server.restart)
    run, *_, leased = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert run is not None and leased is True
    assert [e.sequence for e in await storage.get_events("r1")] == [0]
    assert [e.sequence for e in await storage.get_events("r2")] == [0]
    assert [t.key for t in await storage.list_timers("r3")] == ["s"]


async def test_gives_up_after_reconnect_timeout(
    pg_dsn: str, postgres_server: PostgresServer
) -> None:
    storage = PostgresStorageBackend(dsn=pg_dsn, reconnect_timeout=0.3)
    await storage.connect()
    try:
        await asyncio.to_thread(postgres_server.stop)
        started = time.perf_counter()
        assert await storage.health_check() is False  # at once: no retrying
        assert time.perf_counter() - started < 0.3
        with pytest.raises(ConnectionLostError, match="Lost the connection to PostgreSQL"):
            await storage.get_run("r1")
        assert 0.3 <= time.perf_counter() - started < 2.0
        await asyncio.to_thread(postgres_server.restart)
        assert await storage.get_run("r1") is None  # the same pool works again
        assert await storage.health_check() is True
    finally:
        postgres_server.ensure_running()
        await storage.disconnect()


async def _cut_while_waiting(
    pg_dsn: str, write: Awaitable[Any], block: str, arg: str, wait: str
) -> Any:
    """Run ``write`` while this test's open transaction holds what it needs (``block``
    ran with ``arg``); terminate the session waiting for it (matching ``wait``), let
    the retry queue up again, then roll the blocking transaction back."""
    async with raw(pg_dsn) as holder:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(block, arg)
        task = asyncio.ensure_future(write)
        await eventually(lambda: waiting_on(pg_dsn, wait), message="no writer waited")
        assert await terminate(pg_dsn, wait) == 1
        await eventually(lambda: waiting_on(pg_dsn, wait), message="no retry")
        assert not task.done()
        await tx.rollback()
    return await asyncio.wait_for(task, 10)


async def test_transaction_cut_before_commit_is_retried(
    storage: PostgresStorageBackend, pg_dsn: str
) -> None:
    # A commit appending after the last event queues on the run's advisory lock.
    batch = CommitBatch("r1", events=[marker("r1", 0), marker("r1", 1)])
    lock_wait = "wait_event_type = 'Lock' AND wait_event = 'advisory'"
    await _cut_while_waiting(pg_dsn, storage.commit(batch), LOCK_RUN, "r1", lock_wait)
    events = await storage.get_events("r1")
    assert [(e.sequence, e.data["n"]) for e in events] == [(0, 0), (1, 1)]
    assert [e.sequence for e in batch.events] == [0, 1]


async def test_append_cut_mid_statement_is_looked_up(
    storage: PostgresStorageBackend, pg_dsn: str
) -> None:
    # record_event's one autocommit INSERT waits on another transaction's row at the
    # same sequence; cut there, the append may or may not have happened: it is looked
    # up by event id (not there), then made again.
    other = (
        "INSERT INTO events (run_id, sequence, event_id, type, timestamp, data)"
        " VALUES ($1, 0, 'evt_other', 'context.updated', now(), '{}')"
    )
    row_wait = "wait_event_type = 'Lock' AND wait_event = 'transactionid'"
    event = marker("r1", 7)
    await _cut_while_waiting(pg_dsn, storage.record_event(event), other, "r1", row_wait)
    events = await storage.get_events("r1")
    assert [(e.sequence, e.event_id, e.data["n"]) for e in events] == [(0, event.event_id, 7)]
    assert event.sequence == 0


async def test_commit_cut_during_commit_is_looked_up(
    storage: PostgresStorageBackend, pg_dsn: str
) -> None:
    # A deferred trigger runs at COMMIT: the session sits in pg_sleep inside COMMIT.
    async with raw(pg_dsn) as conn:
        await conn.execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(0.3); RETURN NULL; END $$;"
            " CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON events"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
        )
    batch = CommitBatch("r1", events=[marker("r1")], expected_sequence=-1)
    task = asyncio.create_task(storage.commit(batch))
    in_commit = "wait_event = 'PgSleep' AND query = 'COMMIT'"
    await eventually(lambda: waiting_on(pg_dsn, in_commit), message="never reached COMMIT")
    assert await terminate(pg_dsn, in_commit) == 1
    await asyncio.wait_for(task, 10)  # looked up (not there), then committed again
    assert [e.sequence for e in await storage.get_events("r1")] == [0]
    assert batch.events[0].sequence == 0


async def test_lost_reply_after_a_commit_is_not_repeated(
    storage: PostgresStorageBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server committed, then the reply was lost: the case no server-side fault can
    # stage on cue. The real write runs; only its acknowledgement is dropped.
    def drop_reply(real: Callable[..., Awaitable[int]]) -> Callable[..., Awaitable[int]]:
        calls: list[int] = []

        async def once(*args: Any) -> int:
            result = await real(*args)
            calls.append(result)
            if len(calls) == 1:
                raise ConnectionLostError("reply lost", applied=None)
            return result

        return once

    monkeypatch.setattr(storage, "_commit_once", drop_reply(storage._commit_once))
    monkeypatch.setattr(storage, "_append_one", drop_reply(storage._append_one))
    batch = CommitBatch("r1", events=[marker("r1", 0), marker("r1", 1)], expected_sequence=-1)
    await storage.commit(batch)
    event = marker("r1", 2)
    await storage.record_event(event)
    events = await storage.get_events("r1")
    assert [(e.sequence, e.data["n"]) for e in events] == [(0, 0), (1, 1), (2, 2)]
    assert [e.sequence for e in batch.events] == [0, 1] and event.sequence == 2


async def test_acknowledged_commits_survive_a_server_crash(
    pg_dsn: str, postgres_server: PostgresServer
) -> None:
    # The harness runs with synchronous_commit=off (see tests/servers.py); production
    # keeps the default, on, which this database gets back for the test.
    async with raw(pg_dsn) as conn:
        await conn.execute(
            "DO $$ BEGIN EXECUTE format("
            "'ALTER DATABASE %I SET synchronous_commit = on',"
            " current_database()); END $$"
        )
    storage = PostgresStorageBackend(dsn=pg_dsn)
    await storage.connect()
    try:
        for i in range(20):
            await storage.record_event(marker("r1", i))
        await asyncio.to_thread(postgres_server.kill)
        await asyncio.to_thread(postgres_server.restart)
        assert [e.data["n"] for e in await storage.get_events("r1")] == list(range(20))
        await storage.record_event(marker("r1", 20))
        assert len(await storage.get_events("r1")) == 21
    finally:
        postgres_server.ensure_running()
        await storage.disconnect()
