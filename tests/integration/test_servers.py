"""The test harness itself: real Redis and PostgreSQL servers, and the polling helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest
import redis

from tests.servers import PostgresServer, RedisServer
from tests.support import eventually, free_port, process_alive, wait_until


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


# -- Redis ----------------------------------------------------------------------------------


def test_redis_set_get_through_the_client(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert urlparse(redis_url).hostname == "127.0.0.1"
    finally:
        client.close()


def test_each_redis_url_is_a_fresh_database(redis_server: RedisServer, redis_url: str) -> None:
    first = redis.Redis.from_url(redis_url)
    other_url = redis_server.fresh_url()
    other = redis.Redis.from_url(other_url)
    try:
        first.set("key", "mine")
        assert other_url != redis_url
        assert other.get("key") is None
        assert other.dbsize() == 0
    finally:
        first.close()
        other.close()


def test_redis_restart_keeps_the_port(redis_server: RedisServer, redis_url: str) -> None:
    port, pid = redis_server.port, redis_server.proc.pid  # type: ignore[union-attr]
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.proc.pid != pid  # type: ignore[union-attr]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        client.set("after", "restart")
        assert client.get("after") == b"restart"
    finally:
        client.close()


def test_redis_kill_then_restart(redis_server: RedisServer, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        redis_server.kill()
        assert not redis_server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.restart()
        assert wait_until(client.ping, message="redis did not come back")
    finally:
        client.close()


# -- PostgreSQL -----------------------------------------------------------------------------


async def test_postgres_table_roundtrip(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE runs (id serial PRIMARY KEY, name text NOT NULL)")
        await conn.executemany("INSERT INTO runs (name) VALUES ($1)", [("a",), ("b",)])
        rows = await conn.fetch("SELECT name FROM runs ORDER BY id")
        assert [r["name"] for r in rows] == ["a", "b"]
        assert await conn.fetchval("SELECT current_database()") == urlparse(pg_dsn).path[1:]
    finally:
        await conn.close()


async def test_each_pg_dsn_is_a_fresh_database(pg_dsn: str) -> None:
    # test_postgres_table_roundtrip created `runs` in its own database, not in this one.
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('runs')") is None
    finally:
        await conn.close()


async def test_postgres_restart_keeps_data(postgres_server: PostgresServer, pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    await conn.close()

    port = postgres_server.port
    postgres_server.restart()
    assert postgres_server.port == port

    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT v FROM kept") == 42
    finally:
        await conn.close()


async def test_postgres_kill_then_restart(postgres_server: PostgresServer, pg_dsn: str) -> None:
    database = urlparse(pg_dsn).path[1:]
    conn = await asyncpg.connect(pg_dsn)
    # See PostgresServer._command: acknowledged commits survive kill() only with this.
    await conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = on')
    await conn.close()
    conn = await asyncpg.connect(pg_dsn)
    await conn.execute("CREATE TABLE crash (v int); INSERT INTO crash VALUES (7)")

    postgres_server.kill()
    assert not postgres_server.running
    with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
        await conn.fetchval("SELECT 1", timeout=5)
    with pytest.raises(OSError):
        await asyncpg.connect(pg_dsn, timeout=5)

    postgres_server.restart()  # crash recovery replays the WAL
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT v FROM crash") == 7
    finally:
        await conn.close()


def test_postgres_never_runs_as_root(postgres_server: PostgresServer) -> None:
    postgres_server.ensure_running()
    assert postgres_server.proc is not None
    uid = _uid_of(postgres_server.proc.pid)
    if os.geteuid() == 0:
        assert uid != 0
        assert postgres_server.run_as is not None and uid == postgres_server.run_as.pw_uid
    else:
        assert uid == os.geteuid()


# -- polling helpers ------------------------------------------------------------------------


async def test_eventually_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    async def grows() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) >= 3 else None

    assert await eventually(grows, timeout=2) == [1, 1, 1]
    start = time.monotonic()
    assert await eventually(lambda: "sync ok") == "sync ok"
    assert time.monotonic() - start < 0.5


async def test_eventually_fails_with_message_and_last_value() -> None:
    with pytest.raises(AssertionError, match=r"queue never drained.*last value: 0"):
        await eventually(lambda: 0, timeout=0.1, message="queue never drained")
    with pytest.raises(AssertionError, match=r"last value: \[\]"):
        await eventually(lambda: [], timeout=0.05)


def test_wait_until_and_free_port() -> None:
    deadline = time.monotonic() + 0.1
    assert wait_until(lambda: time.monotonic() > deadline, timeout=2) is True
    with pytest.raises(AssertionError, match="never"):
        wait_until(lambda: None, timeout=0.05, message="never")
    assert 1024 <= free_port() <= 65535


def test_servers_of_a_killed_session_are_swept(tmp_path: Path) -> None:
    # A session SIGKILLed mid-run (no atexit) leaves its server behind; the next one reaps it.
    script = (
        "import os, signal, sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.servers import RedisServer; s = RedisServer.start();"
        "print(s.proc.pid, s.workdir, flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", script, root], capture_output=True, text=True, timeout=30
    )
    pid_text, workdir = out.stdout.split()
    orphan = int(pid_text)
    assert process_alive(orphan), out.stderr
    with RedisServer.start():  # creating any server sweeps orphans first
        assert not process_alive(orphan)
        assert not Path(workdir).exists()
