"""Sleep forms on a durable run: datetimes, computed durations, compound strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyworkflow import RetryableError, get_workflow_result, sleep, start, step, workflow
from pyworkflow.storage.base import StorageBackend


async def test_sleep_until_datetime_completes(store: StorageBackend) -> None:
    @workflow(name="until_wf")
    async def until_wf(moment: datetime) -> str:
        await sleep(moment)
        return "woke"

    moment = datetime.now(UTC) + timedelta(seconds=0.3)
    run_id = await start(until_wf, moment, durable=True, storage=store)
    assert await get_workflow_result(run_id, storage=store, wait=True, timeout=5) == "woke"
    assert datetime.now(UTC) >= moment


async def test_duration_computed_from_now_replays(store: StorageBackend) -> None:
    @workflow(name="computed_wf")
    async def computed_wf() -> str:
        # Not deterministic across replays, yet a common pattern: sleeps are
        # identified by position, so replay adopts the recorded one.
        await sleep(datetime.now(UTC) + timedelta(seconds=0.3))
        await sleep(0.2 + datetime.now(UTC).microsecond / 1e9)
        return "done"

    run_id = await start(computed_wf, durable=True, storage=store)
    assert await get_workflow_result(run_id, storage=store, wait=True, timeout=5) == "done"
    kinds = [e.type.value for e in await store.get_events(run_id)]
    assert kinds.count("sleep.started") == 2 and kinds.count("sleep.completed") == 2


async def test_new_sleep_in_the_past_is_an_error(store: StorageBackend) -> None:
    @workflow(name="past_wf")
    async def past_wf() -> None:
        await sleep(datetime(2000, 1, 1, tzinfo=UTC))

    with pytest.raises(ValueError, match="Cannot sleep until past time"):
        await start(past_wf, durable=True, storage=store)


async def test_compound_retry_after_is_honoured(store: StorageBackend) -> None:
    calls = 0

    @step(max_retries=1, retry_delay="1h")
    async def limited() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RetryableError("429", retry_after=timedelta(seconds=0.2))
        return "ok"

    @step(max_retries=1, retry_delay=0.1)
    async def badly_limited() -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RetryableError("429", retry_after="soonish")  # malformed: step delay used
        return "ok too"

    @workflow(name="retry_after_wf")
    async def retry_after_wf() -> list[str]:
        return [await limited(), await badly_limited()]

    run_id = await start(retry_after_wf, durable=True, storage=store)
    result = await get_workflow_result(run_id, storage=store, wait=True, timeout=5)
    assert result == ["ok", "ok too"] and calls == 4
