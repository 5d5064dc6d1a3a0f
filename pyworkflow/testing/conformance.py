"""The storage conformance suite: the one set of tests every backend must pass.

Subclass :class:`StorageConformance` in a test module and provide a fixture named
``storage`` that yields a connected, empty backend::

    import pytest
    from pyworkflow.testing.conformance import StorageConformance

    class TestMyBackend(StorageConformance):
        @pytest.fixture
        async def storage(self, tmp_path):
            s = MyBackend(...); await s.connect(); yield s; await s.disconnect()

The tests are ``async``; they need pytest-asyncio (with ``asyncio_mode = "auto"``, or
in strict mode decorate the fixture with ``@pytest_asyncio.fixture``). Datetimes are
timezone-aware (UTC) throughout, as the engine writes them.

The tests live in three modules: :mod:`.conformance` (runs: rows, status, listing,
chains, children), :mod:`.conformance_engine` (event log, commits, leases, timers)
and :mod:`.conformance_catalog` (steps, hooks, cancellation flags, schedules).
:class:`StorageConformance` combines them all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyworkflow.storage.base import RunAlreadyExistsError, StorageBackend
from pyworkflow.storage.schemas import RunStatus, WorkflowRun
from pyworkflow.testing.conformance_catalog import CatalogConformance, make_run
from pyworkflow.testing.conformance_engine import EventConformance, LeaseTimerConformance

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class RunConformance:
    """Runs: rows, status updates, listing and paging, chains and children."""

    async def test_health_check(self, storage: StorageBackend) -> None:
        assert await storage.health_check() is True

    async def test_full_run_round_trip(self, storage: StorageBackend) -> None:
        run = WorkflowRun(
            run_id="run_full",
            workflow_name="order",
            status=RunStatus.SUSPENDED,
            created_at=T0,
            updated_at=T0 + timedelta(seconds=1),
            started_at=T0 + timedelta(microseconds=250),
            completed_at=T0 + timedelta(hours=1),
            input_args='[1, "a"]',
            input_kwargs='{"k": [1, 2]}',
            result='{"ok": true}',
            error="boom",
            idempotency_key="idem-1",
            max_duration="1h",
            context={"tenant": "acme", "nested": {"n": [1, 2]}},
            recovery_attempts=2,
            max_recovery_attempts=5,
            recover_on_worker_loss=False,
            parent_run_id="run_parent",
            nesting_depth=1,
            continued_from_run_id="run_prev",
            continued_to_run_id="run_next",
        )
        await storage.create_run(run)
        assert await storage.get_run("run_full") == run
        assert await storage.get_run_by_idempotency_key("idem-1") == run
        assert await storage.get_run_by_idempotency_key("other") is None
        assert await storage.get_run("missing") is None

    async def test_duplicate_run_raises(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("run_dup"))
        with pytest.raises(RunAlreadyExistsError):
            await storage.create_run(make_run("run_dup", workflow_name="other"))
        with pytest.raises(ValueError):
            await storage.create_run(make_run("run_dup"))
        stored = await storage.get_run("run_dup")
        assert stored is not None and stored.workflow_name == "wf"

    async def test_update_run_status(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("run_a", updated_at=T0))
        await storage.update_run_status("run_a", RunStatus.RUNNING)
        run = await storage.get_run("run_a")
        assert run is not None and run.status is RunStatus.RUNNING
        assert run.updated_at > T0 and run.completed_at is None and run.result is None
        await storage.update_run_status("run_a", RunStatus.COMPLETED, result="[42]")
        run = await storage.get_run("run_a")
        assert run is not None and run.result == "[42]" and run.completed_at is not None
        await storage.update_run_status("run_a", RunStatus.FAILED, error="bad")
        run = await storage.get_run("run_a")
        assert run is not None and (run.result, run.error) == ("[42]", "bad")
        assert run.status is RunStatus.FAILED and run.completed_at is not None
        await storage.update_run_status("missing", RunStatus.COMPLETED)  # a no-op
        assert await storage.get_run("missing") is None

    async def test_failed_sets_completed_at(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("run_f"))
        await storage.update_run_status("run_f", RunStatus.FAILED, error="x")
        run = await storage.get_run("run_f")
        assert run is not None and run.completed_at is not None

    async def test_recovery_context_continuation(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("run_a"))
        await storage.update_run_recovery_attempts("run_a", 3)
        await storage.update_run_context("run_a", {"user": "u1", "n": 2})
        await storage.update_run_continuation("run_a", "run_b")
        run = await storage.get_run("run_a")
        assert run is not None and run.recovery_attempts == 3
        assert run.continued_to_run_id == "run_b"
        assert await storage.get_run_context("run_a") == {"user": "u1", "n": 2}
        assert await storage.get_run_context("missing") == {}
        await storage.update_run_continuation("missing", "x")  # a no-op

    async def test_list_runs_pages_newest_first(self, storage: StorageBackend) -> None:
        for i in range(25):
            await storage.create_run(make_run(f"run_{i:02d}", created_at=T0 + timedelta(i)))
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(3):
            page, cursor = await storage.list_runs(limit=10, cursor=cursor)
            seen.extend(r.run_id for r in page)
        assert seen == [f"run_{i:02d}" for i in reversed(range(25))]
        assert cursor is None
        page, cursor = await storage.list_runs(limit=25)
        assert len(page) == 25 and cursor is None

    async def test_list_runs_filters(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("r1", workflow_name="OrderFlow", created_at=T0))
        await storage.create_run(
            make_run("r2", input_kwargs='{"customer": "ACME"}', created_at=T0 + timedelta(1))
        )
        await storage.create_run(
            make_run("r3", status=RunStatus.COMPLETED, created_at=T0 + timedelta(2))
        )

        async def ids(**kw: object) -> list[str]:
            page, _ = await storage.list_runs(**kw)  # type: ignore[arg-type]
            return [r.run_id for r in page]

        assert await ids(query="orderflow") == ["r1"]
        assert await ids(query="acme") == ["r2"]
        assert await ids(status=RunStatus.COMPLETED) == ["r3"]
        assert await ids(start_time=T0 + timedelta(1)) == ["r3", "r2"]
        assert await ids(end_time=T0 + timedelta(1)) == ["r1"]
        window = {"start_time": T0, "end_time": T0 + timedelta(2)}
        assert await ids(**window) == ["r2", "r1"]

    async def test_workflow_chain(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("a", continued_to_run_id="b"))
        await storage.create_run(make_run("b", continued_from_run_id="a", continued_to_run_id="c"))
        await storage.create_run(make_run("c", continued_from_run_id="b"))
        for member in ("a", "b", "c"):
            chain = await storage.get_workflow_chain(member)
            assert [r.run_id for r in chain] == ["a", "b", "c"]
        assert await storage.get_workflow_chain("missing") == []

    async def test_children_parent_depth(self, storage: StorageBackend) -> None:
        await storage.create_run(make_run("p"))
        await storage.create_run(
            make_run("c2", parent_run_id="p", nesting_depth=1, created_at=T0 + timedelta(1))
        )
        await storage.create_run(
            make_run(
                "c1", parent_run_id="p", nesting_depth=1, status=RunStatus.COMPLETED, created_at=T0
            )
        )
        assert [r.run_id for r in await storage.get_children("p")] == ["c1", "c2"]
        done = await storage.get_children("p", status=RunStatus.COMPLETED)
        assert [r.run_id for r in done] == ["c1"]
        parent = await storage.get_parent("c1")
        assert parent is not None and parent.run_id == "p"
        assert await storage.get_parent("p") is None
        assert await storage.get_nesting_depth("c1") == 1
        assert await storage.get_nesting_depth("missing") == 0


class StorageConformance(
    RunConformance, EventConformance, LeaseTimerConformance, CatalogConformance
):
    """Every conformance test; subclass it and provide a ``storage`` fixture."""

    pytestmark = [pytest.mark.asyncio]

    @pytest.fixture
    def storage(self) -> StorageBackend:
        raise NotImplementedError("subclass StorageConformance and define a `storage` fixture")
