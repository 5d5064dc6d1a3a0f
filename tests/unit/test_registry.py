"""The workflow/step registry (API.md §1.9, §8.10)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyworkflow.core import registry as reg
from pyworkflow.core.registry import StepMetadata, WorkflowMetadata, WorkflowRegistry


@pytest.fixture(autouse=True)
def _empty_global_registry() -> Iterator[None]:
    saved = (dict(reg._registry._workflows), dict(reg._registry._steps))
    reg._registry._workflows.clear()
    reg._registry._steps.clear()
    yield
    reg._registry._workflows.clear()
    reg._registry._steps.clear()
    reg._registry._workflows.update(saved[0])
    reg._registry._steps.update(saved[1])


def _wrap(func: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await func(*args, **kwargs)

    return wrapper


async def order_workflow(order_id: str) -> str:
    """Process one order."""
    return order_id


async def other_workflow() -> None:
    return None


async def charge() -> None:
    return None


def test_workflow_metadata_defaults() -> None:
    meta = WorkflowMetadata("order", order_workflow, order_workflow)
    assert meta.max_duration is None
    assert meta.tags == []
    assert meta.description == "Process one order."
    assert meta.context_class is None
    assert (meta.durable, meta.recover_on_worker_loss, meta.max_recovery_attempts) == (
        None,
        None,
        None,
    )
    assert WorkflowMetadata("x", other_workflow, other_workflow).description is None
    none_tags: Any = None
    assert WorkflowMetadata("x", other_workflow, other_workflow, tags=none_tags).tags == []


def test_step_metadata_stringifies_retry_delay_and_keeps_the_value() -> None:
    meta = StepMetadata("charge", charge, charge, retry_delay=10)  # type: ignore[arg-type]
    assert meta.retry_delay == "10"
    assert meta.retry_delay_value == 10
    assert meta.metadata == {}
    assert meta.max_retries == 3
    assert meta.timeout is None
    default = StepMetadata("charge", charge, charge)
    assert (default.retry_delay, default.retry_delay_value) == ("exponential", "exponential")
    assert StepMetadata("c", charge, charge, retry_delay="5s").retry_delay_value == "5s"


def test_register_and_get_workflow_by_name_and_function() -> None:
    registry = WorkflowRegistry()
    wrapper = _wrap(order_workflow)
    meta = registry.register_workflow(
        "order", wrapper, order_workflow, max_duration="1h", tags=["a", "b"], durable=True
    )
    assert registry.get_workflow("order") is meta
    assert meta.tags == ["a", "b"] and meta.max_duration == "1h" and meta.durable is True
    assert registry.get_workflow_by_func(wrapper) is meta
    assert registry.get_workflow_by_func(order_workflow) is meta
    assert registry.get_workflow_name(wrapper) == "order"
    assert registry.get_workflow("missing") is None
    assert registry.get_workflow_by_func(other_workflow) is None
    assert registry.get_workflow_name(other_workflow) is None


def test_register_and_get_step() -> None:
    registry = WorkflowRegistry()
    wrapper = _wrap(charge)
    meta = registry.register_step(
        "charge", wrapper, charge, max_retries=5, retry_delay=[1, 2], metadata={"k": 1}
    )
    assert registry.get_step("charge") is meta
    assert meta.retry_delay == "[1, 2]" and meta.retry_delay_value == [1, 2]
    assert meta.metadata == {"k": 1} and meta.max_retries == 5
    assert registry.get_step_by_func(wrapper) is meta
    assert registry.get_step_by_func(charge) is meta
    assert registry.get_step_name(charge) == "charge"
    assert registry.get_step("nope") is None and registry.get_step_name(order_workflow) is None


def test_list_returns_copies() -> None:
    registry = WorkflowRegistry()
    registry.register_workflow("order", order_workflow, order_workflow)
    registry.register_step("charge", charge, charge)
    workflows, steps = registry.list_workflows(), registry.list_steps()
    assert list(workflows) == ["order"] and list(steps) == ["charge"]
    workflows.clear()
    steps.clear()
    assert registry.get_workflow("order") is not None and registry.get_step("charge") is not None


def test_duplicate_name_with_different_function_raises() -> None:
    registry = WorkflowRegistry()
    registry.register_workflow("order", order_workflow, order_workflow)
    with pytest.raises(ValueError, match="already registered with different function"):
        registry.register_workflow("order", other_workflow, other_workflow)
    registry.register_step("charge", charge, charge)
    with pytest.raises(ValueError, match="already registered with different function"):
        registry.register_step("charge", order_workflow, order_workflow)
    # the failed registration changed nothing
    assert registry.get_workflow("order").original_func is order_workflow  # type: ignore[union-attr]


def test_closures_from_one_factory_are_different_functions() -> None:
    def make() -> Callable[..., Any]:
        async def inner() -> None:
            return None

        return inner

    registry = WorkflowRegistry()
    first, second = make(), make()
    registry.register_workflow("w", first, first)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_workflow("w", second, second)


def test_re_registering_the_same_function_updates_metadata() -> None:
    registry = WorkflowRegistry()
    old_wrapper, new_wrapper = _wrap(order_workflow), _wrap(order_workflow)
    registry.register_workflow("order", old_wrapper, order_workflow, tags=["old"])
    meta = registry.register_workflow("order", new_wrapper, order_workflow, tags=["new"])
    assert registry.get_workflow("order") is meta and meta.tags == ["new"]
    assert registry.get_workflow_by_func(new_wrapper) is meta
    # a wrapper from before the re-registration still resolves, to the current metadata
    assert registry.get_workflow_by_func(old_wrapper) is meta


def test_reloaded_module_registers_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "reg_reload_mod.py").write_text(
        "from pyworkflow.core.registry import register_workflow\n"
        "async def flow():\n    return 1\n"
        "register_workflow('reload_flow', flow, flow)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("reg_reload_mod")
    try:
        first = reg.get_workflow("reload_flow")
        importlib.reload(module)  # new function object, same definition: no clash
        second = reg.get_workflow("reload_flow")
        assert first is not None and second is not None
        assert second.original_func is module.flow and first.original_func is not module.flow
    finally:
        sys.modules.pop("reg_reload_mod", None)


def test_lookup_stays_correct_after_direct_dict_clear() -> None:
    registry = WorkflowRegistry()
    registry.register_workflow("order", order_workflow, order_workflow)
    registry._workflows.clear()  # what upstream's tests do
    assert registry.get_workflow_by_func(order_workflow) is None
    registry.register_workflow("order", other_workflow, other_workflow)
    assert registry.get_workflow_by_func(order_workflow) is None
    assert registry.get_workflow_by_func(other_workflow).name == "order"  # type: ignore[union-attr]


def test_unhashable_callable_is_found_by_scanning() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        async def __call__(self) -> None:
            return None

    func: Any = Unhashable()
    registry = WorkflowRegistry()
    registry.register_step("odd", func, func)
    assert registry.get_step_by_func(func).name == "odd"  # type: ignore[union-attr]


def test_clear() -> None:
    registry = WorkflowRegistry()
    registry.register_workflow("order", order_workflow, order_workflow)
    registry.register_step("charge", charge, charge)
    registry.clear()
    assert registry.list_workflows() == {} and registry.list_steps() == {}
    assert registry.get_workflow_by_func(order_workflow) is None


def test_module_level_helpers_use_the_global_registry() -> None:
    wrapper = _wrap(order_workflow)
    reg.register_workflow("order", wrapper, order_workflow, context_class=dict)
    reg.register_step("charge", charge, charge, retry_delay=10, timeout=30)
    assert reg._registry._workflows["order"].context_class is dict
    assert reg.get_workflow("order") is reg.get_workflow_by_func(wrapper)
    assert reg.get_workflow_name(order_workflow) == "order"
    assert set(reg.list_workflows()) == {"order"}
    step = reg.get_step("charge")
    assert step is not None and step.retry_delay == "10" and step.timeout == 30
    assert reg.get_step_by_func(charge) is step and reg.get_step_name(charge) == "charge"
    assert set(reg.list_steps()) == {"charge"}
    reg.clear_registry()
    assert reg.list_workflows() == {} and reg.list_steps() == {}
