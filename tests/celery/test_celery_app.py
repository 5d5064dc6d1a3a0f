"""The Celery app, routing, Beat scheduler, runtime and async bridge, without a broker."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from celery.beat import ScheduleEntry

from pyworkflow import workflow
from pyworkflow.celery import app as app_module
from pyworkflow.celery import loop, queues
from pyworkflow.celery.app import create_celery_app, resolve_broker_url, tick_entry
from pyworkflow.celery.scheduler import PyWorkflowScheduler
from pyworkflow.celery.tasks import recovery_settings
from pyworkflow.config import configure
from pyworkflow.core.registry import get_workflow
from pyworkflow.runtime import get_runtime
from pyworkflow.runtime.celery import CeleryRuntime
from pyworkflow.storage.memory import InMemoryStorageBackend
from pyworkflow.storage.sqlite import SQLiteStorageBackend


def test_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWORKFLOW_CELERY_VISIBILITY_TIMEOUT", "7200")
    monkeypatch.setenv("PYWORKFLOW_TICK_INTERVAL", "0.5")
    conf = create_celery_app("redis://b:1/0", "redis://b:1/1").conf
    assert (conf.broker_url, conf.result_backend) == ("redis://b:1/0", "redis://b:1/1")
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options == {"visibility_timeout": 7200.0}
    tick = conf.beat_schedule["pyworkflow.tick"]
    assert tick["schedule"] == 0.5 and tick["options"]["queue"] == "pyworkflow.schedules"


def test_broker_comes_from_argument_env_yaml_then_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYWORKFLOW_CELERY_BROKER", raising=False)
    assert resolve_broker_url() == "redis://localhost:6379/0"
    (tmp_path / "pyworkflow.config.yaml").write_text("celery:\n  broker: redis://yaml:6379/2\n")
    assert resolve_broker_url() == "redis://yaml:6379/2"
    monkeypatch.setenv("PYWORKFLOW_CELERY_BROKER", "redis://env:6379/3")
    assert resolve_broker_url() == "redis://env:6379/3"
    assert resolve_broker_url("redis://arg:6379/4") == "redis://arg:6379/4"


def test_bad_numbers_in_env_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYWORKFLOW_TICK_INTERVAL", "soon")
    with pytest.raises(ValueError, match="PYWORKFLOW_TICK_INTERVAL must be a positive number"):
        tick_entry()


def test_each_task_has_its_own_queue_and_no_binding_overlaps() -> None:
    app = create_celery_app("memory://", "cache+memory://")
    app.loader.import_default_modules()
    router = app.amqp.router
    expected = {
        "pyworkflow.start_workflow": "pyworkflow.workflows",
        "pyworkflow.resume_workflow": "pyworkflow.workflows",
        "pyworkflow.execute_step": "pyworkflow.steps",
        "pyworkflow.tick": "pyworkflow.schedules",
    }
    for name, queue in expected.items():
        assert router.route({}, name)["queue"].name == queue
    bindings = {q.name: q.routing_key for q in queues.task_queues()}
    for name, route in queues.TASK_ROUTES.items():  # exactly one queue gets each message
        matching = [q for q, key in bindings.items() if _topic_match(key, route["routing_key"])]
        assert matching == [route["queue"]], name


def _topic_match(pattern: str, key: str) -> bool:
    if pattern.endswith(".#"):
        return key == pattern[:-2] or key.startswith(pattern[:-1])
    return pattern == key


def test_scheduler_adds_the_tick_to_a_replaced_schedule(tmp_path: Path) -> None:
    app = create_celery_app("memory://", "cache+memory://")
    app.conf.beat_schedule = {"mine": {"task": "myapp.report", "schedule": 60.0}}
    sched = PyWorkflowScheduler(app, schedule_filename=str(tmp_path / "beat"))
    try:
        assert {"mine", "pyworkflow.tick"} <= set(sched.schedule)
        entry = sched.schedule["pyworkflow.tick"]
        assert isinstance(entry, ScheduleEntry) and entry.task == "pyworkflow.tick"
    finally:
        sched.close()


def test_runtime_is_registered_and_refuses_what_workers_cannot_share() -> None:
    runtime = get_runtime("celery")
    assert isinstance(runtime, CeleryRuntime) and not runtime.supports_transient

    async def attempt(storage: object, durable: bool) -> None:
        await runtime.start_workflow(
            lambda: None,
            (),
            {},
            "run_x",
            "wf",
            storage,
            durable,  # type: ignore[arg-type]
        )

    with pytest.raises(ValueError, match="cannot use InMemoryStorageBackend"):
        asyncio.run(attempt(InMemoryStorageBackend(), True))
    with pytest.raises(ValueError, match="durable workflows only"):
        asyncio.run(attempt(SQLiteStorageBackend(":memory:"), False))
    with pytest.raises(ValueError, match="needs a storage backend"):
        asyncio.run(attempt(None, True))


def test_recovery_settings_follow_decorator_then_config() -> None:
    @workflow(name="celery_recovery_a", recover_on_worker_loss=False, max_recovery_attempts=7)
    async def a() -> None: ...

    @workflow(name="celery_recovery_b")
    async def b() -> None: ...

    meta_a, meta_b = get_workflow("celery_recovery_a"), get_workflow("celery_recovery_b")
    assert meta_a is not None and meta_b is not None
    assert recovery_settings(meta_a) == (False, 7)
    assert recovery_settings(meta_b) == (True, 3)
    configure(default_recover_on_worker_loss=False, default_max_recovery_attempts=1)
    assert recovery_settings(meta_b) == (False, 1)


def test_one_loop_and_one_backend_per_database(tmp_path: Path) -> None:
    db = tmp_path / "wf.db"
    configure(storage=SQLiteStorageBackend(str(db)))

    async def pick() -> list[object]:
        return [
            await loop.storage_for(None),
            await loop.storage_for({"type": "sqlite", "base_path": str(db)}),
            await loop.storage_for({"base_path": str(db), "type": "sqlite"}),
            asyncio.get_running_loop(),
        ]

    first, second, third, running = loop.run(pick())
    assert first is second is third  # one backend: SQLite locks are per process
    assert loop.run(pick())[3] is running  # the same loop, task after task
    with pytest.raises(ValueError, match="in-memory storage cannot be shared"):
        loop.run(loop.storage_for({"type": "memory"}))
    loop.shutdown()


def test_a_forked_child_gets_its_own_loop() -> None:
    async def where() -> int:
        return id(asyncio.get_running_loop())

    parent = loop.run(where())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread does not exist here
        os.write(write, str(loop.run(where(), timeout=10)).encode())
        os._exit(0)
    os.close(write)
    child = int(os.read(read, 64))
    os.waitpid(pid, 0)
    assert child != parent and loop.run(where()) == parent


def test_discovery_reports_each_module_and_survives_failures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYWORKFLOW_DISCOVER", "json, no_such_module_xyz")
    assert app_module.discover_in_worker() == ["no_such_module_xyz"]
    out = capsys.readouterr().out
    assert "✓ imported json" in out and "✗ could not import no_such_module_xyz" in out
