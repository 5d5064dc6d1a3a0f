"""Tests for pyworkflow.serialization: tags, round-trips, the pickle setting."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
from collections import namedtuple
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Any

import pytest
from pydantic import BaseModel

from pyworkflow.core.exceptions import FatalError, RetryableError, SerializationError
from pyworkflow.serialization import (
    EnhancedJSONEncoder,
    deserialize,
    deserialize_args,
    deserialize_kwargs,
    enhanced_json_decoder,
    is_pickle_allowed,
    serialize,
    serialize_args,
    serialize_kwargs,
    set_pickle_allowed,
)


class Color(Enum):
    RED = "red"
    PAIR = (1, 2)


class Level(IntEnum):
    LOW = 1


class Mode(StrEnum):
    FAST = "fast"


class OrderError(Exception):
    """A custom exception defined in the test module, importable by path."""


class PickyError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")


class Address(BaseModel):
    city: str
    tags: tuple[str, ...] = ()


class Customer(BaseModel):
    name: str
    address: Address
    joined: datetime


@dataclasses.dataclass
class Item:
    sku: str
    qty: int
    dims: tuple[int, int] = (0, 0)


@dataclasses.dataclass(frozen=True)
class Order:
    id: str
    items: list[Item]
    total: Decimal
    note: str = dataclasses.field(default="", init=False)


class Opaque:
    """No JSON form: only the cloudpickle fallback can carry it."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value


class Holder(BaseModel, arbitrary_types_allowed=True):
    thing: Opaque


Point = namedtuple("Point", "x y")


@pytest.fixture(autouse=True)
def _restore_pickle_setting() -> Iterator[None]:
    before = is_pickle_allowed()
    yield
    set_pickle_allowed(before)


def roundtrip(value: Any, **kwargs: Any) -> Any:
    return deserialize(serialize(value, **kwargs), **kwargs)


@pytest.mark.parametrize(
    "value", [None, True, 0, -3, 1.5, "héllo", [], {}, [1, "a", None], {"a": {"b": [1, 2]}}]
)
def test_plain_json_matches_json_dumps(value: Any) -> None:
    assert serialize(value) == json.dumps(value)
    assert deserialize(serialize(value)) == value


def test_int_float_bool_none_keys_are_stringified_like_json() -> None:
    data: dict[Any, str] = {1: "a", 2.5: "b", False: "c", None: "d"}
    assert deserialize(serialize(data)) == {"1": "a", "2.5": "b", "false": "c", "null": "d"}
    assert serialize(data) == json.dumps(data)
    with pytest.raises(SerializationError, match="dict key"):
        serialize({(1, 2): "x"})


def test_tuple_roundtrips() -> None:
    assert roundtrip((1, "a", None)) == (1, "a", None)
    assert roundtrip(()) == ()
    assert type(roundtrip(Point(1, 2))) is tuple
    assert serialize((1, 2)) == '{"__type__": "tuple", "value": [1, 2]}'


def test_nested_tuples_inside_dicts_and_lists() -> None:
    value = {"a": [(1, (2, 3)), [4, (5,)]], "b": ({"c": (6,)},), "d": [[(7, 8)]]}
    result = roundtrip(value)
    assert result == value
    assert isinstance(result["a"][0], tuple) and isinstance(result["a"][0][1], tuple)
    assert isinstance(result["a"][1], list) and isinstance(result["a"][1][1], tuple)
    assert isinstance(result["b"][0]["c"], tuple)
    assert isinstance(result["d"][0][0], tuple)


def test_input_containers_are_not_mutated() -> None:
    value = {"a": [1, (2, 3)], "b": 4}
    serialize(value)
    assert value == {"a": [1, (2, 3)], "b": 4}
    assert isinstance(value["a"][1], tuple)  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        (datetime(2024, 5, 6, 7, 8, 9, 123456), "datetime"),
        (datetime(2024, 5, 6, 7, 8, tzinfo=UTC), "datetime"),
        (datetime(2024, 5, 6, tzinfo=timezone(timedelta(hours=-5))), "datetime"),
        (date(2024, 2, 29), "date"),
        (timedelta(days=1, seconds=1.5), "timedelta"),
        (Decimal("12.3400"), "decimal"),
        (b"\x00\xffbytes", "bytes"),
        ({1, 2, 3}, "set"),
        ({(1, 2), (3, 4)}, "set"),
        (frozenset({"a", "b"}), "frozenset"),
    ],
)
def test_tagged_scalars_roundtrip(value: Any, tag: str) -> None:
    encoded = json.loads(serialize(value))
    assert encoded["__type__"] == tag
    result = deserialize(serialize(value))
    assert result == value and type(result) is type(value)


def test_upstream_tag_contents() -> None:
    assert json.loads(serialize(date(2024, 1, 2))) == {"__type__": "date", "value": "2024-01-02"}
    assert json.loads(serialize(timedelta(minutes=1))) == {"__type__": "timedelta", "value": 60.0}
    assert json.loads(serialize(Decimal("1.5"))) == {"__type__": "decimal", "value": "1.5"}
    assert json.loads(serialize(b"hi")) == {"__type__": "bytes", "value": "aGk="}
    assert json.loads(serialize({3, 1})) == {"__type__": "set", "value": [1, 3]}


def test_enums_roundtrip_including_str_and_int_subclasses() -> None:
    assert roundtrip(Color.RED) is Color.RED
    assert roundtrip(Color.PAIR) is Color.PAIR
    assert roundtrip(Level.LOW) is Level.LOW
    assert roundtrip(Mode.FAST) is Mode.FAST
    encoded = json.loads(serialize(Color.RED))
    assert encoded == {"__type__": "enum", "class": f"{__name__}.Color", "value": "red"}


@pytest.mark.parametrize("exc", [ValueError("bad", 3), KeyError("k"), RuntimeError()])
def test_builtin_exceptions_come_back_as_their_class(exc: BaseException) -> None:
    result = roundtrip(exc)
    assert type(result) is type(exc)
    assert result.args == exc.args


def test_custom_and_pyworkflow_exceptions_come_back_as_their_class() -> None:
    result = roundtrip(OrderError("out of stock", {"sku": "A1"}))
    assert isinstance(result, OrderError)
    assert result.args == ("out of stock", {"sku": "A1"})
    fatal = roundtrip(FatalError("card declined"))
    assert isinstance(fatal, FatalError) and fatal.message == "card declined"
    assert isinstance(roundtrip(RetryableError("busy")), RetryableError)


def test_exception_tag_contents() -> None:
    encoded = json.loads(serialize(OrderError("x", 1)))
    assert encoded == {
        "__type__": "exception",
        "class": f"{__name__}.OrderError",
        "message": "('x', 1)",
        "args": ["x", 1],
    }


def test_exception_with_incompatible_init_falls_back_to_exception() -> None:
    result = roundtrip(PickyError(404, "missing"))
    assert type(result) is Exception
    assert result.args == ("404: missing",)


def test_exception_with_unimportable_class_falls_back_to_exception() -> None:
    class LocalError(Exception):
        pass

    result = roundtrip(LocalError("local"))
    assert type(result) is Exception and result.args == ("local",)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("ValueError", ValueError), ("os.system", Exception), ("no.such.Error", Exception)],
)
def test_exception_class_lookup_is_safe(path: str, expected: type[BaseException]) -> None:
    # bare names are upstream's format; non-exception callables are never called
    data = json.dumps({"__type__": "exception", "class": path, "args": ["echo hi"]})
    result = deserialize(data)
    assert type(result) is expected and result.args == ("echo hi",)


def test_exception_args_that_cannot_be_encoded_become_their_repr() -> None:
    lock = threading.Lock()
    result = roundtrip(ValueError("locked", lock), allow_pickle=False)
    assert type(result) is ValueError
    assert result.args[0] == "locked" and result.args[1] == repr(lock)


def test_pydantic_model_roundtrips_with_json_tag() -> None:
    customer = Customer(
        name="Ada",
        address=Address(city="London", tags=("home",)),
        joined=datetime(2024, 1, 1, tzinfo=UTC),
    )
    encoded = json.loads(serialize(customer, allow_pickle=False))
    assert encoded["__type__"] == "pydantic"
    assert encoded["class"] == f"{__name__}.Customer"
    assert encoded["value"]["address"] == {"city": "London", "tags": ["home"]}
    assert roundtrip(customer, allow_pickle=False) == customer


def test_dataclass_roundtrips_with_nested_types() -> None:
    order = Order(id="o1", items=[Item("A", 2, (3, 4)), Item("B", 1)], total=Decimal("9.90"))
    object.__setattr__(order, "note", "gift")
    encoded = json.loads(serialize(order, allow_pickle=False))
    assert encoded["__type__"] == "dataclass"
    assert encoded["class"] == f"{__name__}.Order"
    assert encoded["value"]["items"][0]["__type__"] == "dataclass"
    result = roundtrip(order, allow_pickle=False)
    assert result == order and result.note == "gift"
    assert isinstance(result.items[0], Item) and result.items[0].dims == (3, 4)


def test_dataclass_tag_ignores_non_dataclass_classes() -> None:
    data = json.dumps({"__type__": "dataclass", "class": "subprocess.Popen", "value": {}})
    assert deserialize(data) == {"__type__": "dataclass", "class": "subprocess.Popen", "value": {}}


def test_pydantic_validation_failure_returns_raw_dict() -> None:
    raw = {"__type__": "pydantic", "class": f"{__name__}.Address", "value": {"town": 1}}
    assert deserialize(json.dumps(raw)) == raw


def test_pickle_fallback_roundtrips_when_allowed() -> None:
    encoded = json.loads(serialize(Opaque(7)))
    assert encoded["__type__"] == "cloudpickle" and isinstance(encoded["value"], str)
    assert roundtrip(Opaque(7)) == Opaque(7)
    assert roundtrip({"x": [Opaque(1)]}) == {"x": [Opaque(1)]}


def test_pickle_refused_on_encode_names_type_and_fix() -> None:
    with pytest.raises(SerializationError) as info:
        serialize({"x": Opaque(1)}, allow_pickle=False)
    message = str(info.value)
    assert "Opaque" in message and "without pickle" in message
    assert "dataclass or pydantic model" in message and "allow_pickle=True" in message
    assert info.value.data_type == "Opaque"


def test_pickle_refused_on_decode_per_call_and_module_wide() -> None:
    text = serialize(Opaque(2), allow_pickle=True)
    with pytest.raises(SerializationError, match="pickle is not allowed"):
        deserialize(text, allow_pickle=False)
    set_pickle_allowed(False)
    assert is_pickle_allowed() is False
    with pytest.raises(SerializationError):
        serialize(Opaque(2))
    with pytest.raises(SerializationError):
        deserialize(text)
    with pytest.raises(SerializationError):
        json.loads(text, object_hook=enhanced_json_decoder)
    assert deserialize(text, allow_pickle=True) == Opaque(2)
    assert serialize((1, 2)) == '{"__type__": "tuple", "value": [1, 2]}'
    set_pickle_allowed(True)
    assert deserialize(text) == Opaque(2)


def test_unpicklable_value_raises_serialization_error_naming_type() -> None:
    with pytest.raises(SerializationError, match="type lock") as info:
        serialize({"guard": threading.Lock()})
    # Also a TypeError, which is what upstream raised: old `except TypeError` still works.
    assert isinstance(info.value, TypeError)


def test_circular_reference_raises_serialization_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="circular"):
        serialize(loop)


@pytest.mark.parametrize(
    "raw",
    [
        {"__type__": "no-such-tag", "value": 1},
        {"__type__": "enum", "class": "no_such_module.Color", "value": "red"},
        {"__type__": "enum", "class": f"{__name__}.Color", "value": "purple"},
        {"__type__": "datetime", "value": "not a date"},
        {"__type__": "tuple", "value": "abc"},
        {"__type__": "pydantic", "class": "json.JSONDecoder", "value": {}},
        {"__type__": "cloudpickle", "value": "bm90IGEgcGlja2xl"},
    ],
)
def test_unknown_or_malformed_tags_return_the_raw_dict(raw: dict[str, Any]) -> None:
    assert deserialize(json.dumps(raw)) == raw


def test_args_and_kwargs_helpers() -> None:
    assert serialize_args() == "[]"
    assert serialize_args(1, "a") == '[1, "a"]'
    assert deserialize_args(serialize_args(1, (2, 3), Color.RED)) == (1, (2, 3), Color.RED)
    assert serialize_kwargs() == "{}"
    assert deserialize_kwargs(serialize_kwargs(a=1, b=(2,))) == {"a": 1, "b": (2,)}
    assert deserialize_args('{"a": 1}') == deserialize_args("3") == ()
    assert deserialize_kwargs("[1, 2]") == deserialize_kwargs("null") == {}


def test_enhanced_json_encoder() -> None:
    value = {"a": (1, 2), "b": Mode.FAST}
    text = json.dumps(value, cls=EnhancedJSONEncoder)
    assert text == serialize(value)
    buffer = io.StringIO()
    json.dump(value, buffer, cls=EnhancedJSONEncoder)
    assert buffer.getvalue() == text
    assert json.dumps(Mode.FAST, cls=EnhancedJSONEncoder) == serialize(Mode.FAST)
    with pytest.raises(SerializationError):
        json.dumps(Opaque(1), cls=EnhancedJSONEncoder, allow_pickle=False)
    assert "cloudpickle" in json.dumps(Opaque(1), cls=EnhancedJSONEncoder, allow_pickle=True)
    tagged = EnhancedJSONEncoder().default(date(2024, 1, 2))
    assert tagged == {"__type__": "date", "value": "2024-01-02"}


def test_equal_inputs_give_equal_output() -> None:
    first = serialize({"b": 1, "a": [(1, 2), {3, 1, 2}], "c": Item("x", 1)})
    assert first == serialize({"b": 1, "a": [(1, 2), {2, 3, 1}], "c": Item("x", 1)})


def test_set_output_does_not_depend_on_hash_seed() -> None:
    code = (
        "from pyworkflow.serialization import serialize;"
        "print(serialize({'alpha', 'beta', 'gamma', 'delta', ('x', 1), 'epsilon'}))"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_pydantic_model_without_json_form_uses_pickle_or_explains() -> None:
    holder = Holder(thing=Opaque(3))
    with pytest.raises(SerializationError, match="pydantic model Holder"):
        serialize(holder, allow_pickle=False)
    assert json.loads(serialize(holder))["__type__"] == "cloudpickle"
    assert roundtrip(holder).thing == Opaque(3)
