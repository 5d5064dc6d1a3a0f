"""docs/guides/storage.md against a real PostgreSQL.

tests/test_docs.py runs the guide's self-contained blocks; the ones marked
``# doctest: skip-run`` need a server, and the retention SQL is not Python. Here they
run against the PostgreSQL the harness started, with the guide's example DSN replaced
by a fresh database's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from pyworkflow.engine.events import Event, EventType
from pyworkflow.storage.postgres import PostgresStorageBackend
from pyworkflow.storage.schemas import RunStatus, WorkflowRun

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "docs" / "guides" / "storage.md").read_text(encoding="utf-8")
EXAMPLE_DSN = "postgresql://orders:s3cret@db.internal:5432/orders"
PYTHON = re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", GUIDE, re.S | re.M)
SERVER_BLOCKS = [b for b in PYTHON if b.lstrip().startswith("# doctest: skip-run")]
[RETENTION_SQL] = re.findall(r"^```sql[ \t]*\n(.*?)^```[ \t]*$", GUIDE, re.S | re.M)


def run_block(code: str, dsn: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert EXAMPLE_DSN in code
    script = cwd / "block.py"
    script.write_text(code.replace(EXAMPLE_DSN, dsn), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_guide_covers_every_topic() -> None:
    for heading in ("Choosing a backend", "Connection settings", "Migrations", "Backups"):
        assert f"\n## {heading}\n" in GUIDE
    assert "\n## Retention\n" in GUIDE and "no retention job yet" in GUIDE
    assert len(SERVER_BLOCKS) == 2  # keep server-only fragments few


def test_the_env_variables_named_are_the_ones_read() -> None:
    config_source = (ROOT / "pyworkflow" / "config.py").read_text(encoding="utf-8")
    named = set(re.findall(r"PYWORKFLOW_[A-Z_]+", GUIDE))
    for var in named:
        stem = var.removeprefix("PYWORKFLOW_POSTGRES_")
        assert var in config_source or f'"{stem}"' in config_source, var


def test_postgres_code_example_runs(pg_dsn: str, tmp_path: Path) -> None:
    done = run_block(SERVER_BLOCKS[0], pg_dsn, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


def test_deploy_check_reports_pending_migrations(pg_dsn: str, tmp_path: Path) -> None:
    fresh = run_block(SERVER_BLOCKS[1], pg_dsn, tmp_path)
    assert (fresh.returncode, fresh.stdout.strip()) == (1, "migrations to apply: [1, 2]")
    run_block(SERVER_BLOCKS[0], pg_dsn, tmp_path)  # connects: migrates
    current = run_block(SERVER_BLOCKS[1], pg_dsn, tmp_path)
    assert (current.returncode, current.stdout.strip()) == (0, "migrations to apply: none")


async def test_retention_sql_deletes_only_old_finished_families(pg_dsn: str) -> None:
    storage = PostgresStorageBackend(dsn=pg_dsn)
    await storage.connect()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    recent = datetime.now(UTC) - timedelta(days=1)
    finished = RunStatus.COMPLETED
    runs = [
        WorkflowRun("old_done", "wf", finished, created_at=old, completed_at=old),
        WorkflowRun("old_failed", "wf", RunStatus.FAILED, created_at=old, completed_at=old),
        WorkflowRun("old_parent", "wf", finished, created_at=old, completed_at=old),
        WorkflowRun("child", "wf", RunStatus.SUSPENDED, created_at=old, parent_run_id="old_parent"),
        WorkflowRun("recent_done", "wf", finished, created_at=recent, completed_at=recent),
        WorkflowRun("running", "wf", RunStatus.RUNNING, created_at=old),
    ]
    try:
        for run in runs:
            await storage.create_run(run)
            event = Event(run_id=run.run_id, type=EventType.CONTEXT_UPDATED, data={})
            await storage.record_event(event)
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(RETENTION_SQL)  # as pasted into psql
        finally:
            await conn.close()
        left = {r.run_id for r in (await storage.list_runs())[0]}
        gone = {"old_done", "old_failed"}
        assert left == {r.run_id for r in runs} - gone
        for run_id in gone:
            assert await storage.get_events(run_id) == []
        assert len(await storage.get_events("old_parent")) == 1  # its child still runs
    finally:
        await storage.disconnect()
