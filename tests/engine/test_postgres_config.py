"""Running durable workflows on PostgreSQL takes configuration only, no code change.

A user's script that calls ``configure()`` without a storage argument runs on PostgreSQL
once ``PYWORKFLOW_STORAGE_TYPE=postgres`` and the ``PYWORKFLOW_POSTGRES_*`` variables are
set (or ``pyworkflow.config.yaml`` says so). The script runs as its own process in an
empty directory; the test then reads the run from the database itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pyworkflow.storage.postgres import PostgresStorageBackend

ROOT = Path(__file__).resolve().parents[2]

# Written the way the examples are, minus any storage: steps, a retry and a sleep.
SCRIPT = """
import asyncio, json

from pyworkflow import (
    configure, get_storage, get_workflow_result, get_workflow_run, sleep, start, step,
    workflow,
)

attempts = []


@step
async def reserve(order_id: str) -> str:
    return f"reservation-{order_id}"


@step(max_retries=3, retry_delay=0.1)
async def charge(order_id: str) -> str:
    attempts.append(order_id)
    if len(attempts) == 1:
        raise ConnectionError("payment gateway timed out")  # retried after 0.1 s
    return f"charge-{order_id}"


@workflow(durable=True)
async def checkout(order_id: str) -> dict:
    reservation = await reserve(order_id)
    charge_id = await charge(order_id)
    await sleep(0.2)
    return {"reservation": reservation, "charge": charge_id}


async def main() -> None:
    configure()  # no storage here: it comes from the environment or the YAML file
    run_id = await start(checkout, "A-100")
    for _ in range(300):
        run = await get_workflow_run(run_id)
        if run.status.value == "completed":
            break
        await asyncio.sleep(0.02)
    storage = get_storage()
    print(json.dumps({
        "run_id": run_id,
        "storage": type(storage).__name__,
        "where": [storage.host, storage.port, storage.database],
        "status": run.status.value,
        "result": await get_workflow_result(run_id),
        "attempts": len(attempts),
    }))


asyncio.run(main())
"""


@pytest.mark.parametrize("source", ["env", "yaml"])
async def test_script_runs_on_postgres_from_configuration(
    source: str, pg_dsn: str, tmp_path: Path
) -> None:
    url = urlsplit(pg_dsn)
    settings = {
        "HOST": url.hostname or "",
        "PORT": str(url.port),
        "USER": url.username or "",
        "PASSWORD": "",
        "DATABASE": url.path.lstrip("/"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYTHONPATH"] = str(ROOT)
    if source == "env":
        env["PYWORKFLOW_STORAGE_TYPE"] = "postgres"
        env.update({f"PYWORKFLOW_POSTGRES_{key}": value for key, value in settings.items()})
    else:
        lines = ["storage:", "  type: postgres"]
        lines += [f"  {key.lower()}: '{value}'" for key, value in settings.items()]
        (tmp_path / "pyworkflow.config.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "checkout.py").write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "checkout.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["storage"] == "PostgresStorageBackend"
    assert report["where"] == [settings["HOST"], url.port, settings["DATABASE"]]
    assert report["status"] == "completed" and report["attempts"] == 2
    assert report["result"] == {"reservation": "reservation-A-100", "charge": "charge-A-100"}
    assert not (tmp_path / "pyworkflow_data").exists()  # no SQLite fallback anywhere

    # The run really lives in PostgreSQL.
    storage = PostgresStorageBackend(dsn=pg_dsn)
    await storage.connect()
    try:
        kinds = [e.type.value for e in await storage.get_events(report["run_id"])]
    finally:
        await storage.disconnect()
    assert kinds.count("step.completed") == 2 and kinds.count("step.retrying") == 1
    assert kinds.count("sleep.completed") == 1 and kinds[-1] == "workflow.completed"
