"""Durable runs in plain JSON files, configured once with ``configure()``.

Run from the repository root:

    python examples/local/durable/02_file_storage.py

``configure(storage=..., default_durable=True)`` makes every ``start()`` durable and
stored there, so the calls need no ``durable=``/``storage=`` arguments. The file
backend keeps one JSON file per run and one JSON-lines file per event log: handy to
look at, safe for several processes on one machine. SQLite is the embedded default
(``./pyworkflow_data/pyworkflow.db`` when nothing is configured); this example uses a
temporary directory instead so that it leaves nothing in your checkout.
"""

import asyncio
import tempfile
from pathlib import Path

from pyworkflow import (
    FileStorageBackend,
    configure,
    get_workflow_result,
    get_workflow_run,
    start,
    step,
    workflow,
)


@step
async def fetch_user(user_id: int) -> dict:
    return {"id": user_id, "email": f"user{user_id}@example.com"}


@step
async def send_welcome(user: dict) -> str:
    return f"welcome mail sent to {user['email']}"


@workflow
async def onboard(user_id: int) -> str:
    user = await fetch_user(user_id)
    return await send_welcome(user)


async def main() -> None:
    base_path = Path(tempfile.mkdtemp()) / "workflows"
    configure(storage=FileStorageBackend(str(base_path)), default_durable=True)

    run_id = await start(onboard, 7)
    print(f"run {run_id}: {await get_workflow_result(run_id)}")

    print(f"files under {base_path}:")
    for path in sorted(base_path.rglob("*")):
        if path.is_file() and not path.relative_to(base_path).parts[0].startswith("."):
            print(f"  {path.relative_to(base_path)}")

    # Another process (or a restart) sees the same run: open the folder afresh.
    reopened = FileStorageBackend(str(base_path))
    run = await get_workflow_run(run_id, storage=reopened)
    print(f"read back with a new backend object: status={run.status.value}")

    log = base_path / "events" / f"{run_id}.jsonl"
    print(f"event log {log.name}: {len(log.read_text().splitlines())} lines")


if __name__ == "__main__":
    asyncio.run(main())
