"""Properties of the JSON codec (pyworkflow.serialization).

* every supported value round-trips exactly: type, contents, key order, Decimal
  precision, datetime offset;
* dicts whose keys look like type tags (``__type__``, ``~__type__``, ...) are data and
  come back as data, wherever they sit (plain containers, dataclass or model fields);
* ``deserialize_untrusted`` on arbitrary JSON never unpickles, never imports or calls a
  class named by the data, and returns only plain JSON plus value types;
* ``deserialize(..., allow_pickle=False)`` never unpickles and fails only with
  ``SerializationError`` (or ``JSONDecodeError`` for text that is not JSON).

The "never" checks use canaries (tests/property/strategies.py): a real cloudpickle
payload and classes whose construction records a trip, so no monkeypatching is needed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from pyworkflow.core.exceptions import FatalError, RetryableError, SerializationError
from pyworkflow.serialization import deserialize, serialize
from pyworkflow.serialization.decoder import deserialize_untrusted
from tests.property.strategies import (
    CANARY,
    arbitrary_json,
    canary_pickle,
    json_keys,
    json_values,
    prop_settings,
)


class Color(Enum):
    RED = "red"
    PAIR = (1, 2)


class Level(IntEnum):
    LOW = 1
    HIGH = 2


class Mode(StrEnum):
    FAST = "fast"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: Any = None


@dataclasses.dataclass
class Box:
    items: list[Any]
    note: Any = None
    hidden: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass
class TypeNamed:
    """A dataclass whose field names are the tag keys."""

    __type__: Any
    value: Any = None


class Profile(BaseModel):
    name: str
    when: datetime
    amount: Decimal
    tags: list[str]
    meta: dict[str, Any]


class OrderError(Exception):
    """A custom exception, importable by path."""


@pytest.fixture(autouse=True)
def _no_canary_left() -> Iterator[None]:
    CANARY.trips.clear()
    yield
    CANARY.trips.clear()


# ---------------------------------------------------------------------- helpers


def same(a: Any, b: Any) -> bool:
    """Structural equality that also checks types (1 != 1.0 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, datetime):
        # Aware values come back with a fixed offset: wall clock plus offset (which
        # isoformat spells out) is the instant. Not ``==``: PEP 495 makes a zone's
        # repeated or skipped hour unequal to every other zone's datetime.
        return a.isoformat() == b.isoformat()
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, BaseException):
        return same(a.args, b.args)
    if dataclasses.is_dataclass(a):
        names = [f.name for f in dataclasses.fields(a)]
        return all(same(getattr(a, n), getattr(b, n)) for n in names)
    return bool(a == b)


def roundtrip(value: Any, **kwargs: Any) -> Any:
    return deserialize(serialize(value, **kwargs), **kwargs)


def _aware_zones() -> st.SearchStrategy[Any]:
    offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    named = st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]).map(
        ZoneInfo
    )
    return st.one_of(offsets, named)


datetimes = st.one_of(st.datetimes(), st.datetimes(timezones=_aware_zones()))
# Float seconds is the stored format (API.md 7.1): exact to the microsecond up to ~71 years.
timedeltas = st.timedeltas(min_value=timedelta(days=-25_000), max_value=timedelta(days=25_000))
decimals = st.decimals(allow_nan=False)
hashables = st.one_of(
    st.integers(), st.text(max_size=6), decimals, st.dates(), st.tuples(st.integers())
)

value_leaves = st.one_of(
    json_values,
    datetimes,
    st.dates(),
    timedeltas,
    decimals,
    st.binary(max_size=16),
    st.uuids(),
    st.sampled_from([Color.RED, Color.PAIR, Level.LOW, Level.HIGH, Mode.FAST]),
    st.sets(hashables, max_size=4),
    st.frozensets(hashables, max_size=4),
)


def _value_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(json_keys, children, max_size=3),
    )


rich_values = st.recursive(value_leaves, _value_containers, max_leaves=10)


# ---------------------------------------------------------------------- round trips


@prop_settings(150)
@given(json_values)
def test_plain_json_roundtrips_on_every_decoding_path(value: Any) -> None:
    text = serialize(value)
    assert same(deserialize(text), value)
    assert same(deserialize(text, allow_pickle=False), value)
    assert same(deserialize_untrusted(text), value)


@prop_settings(150)
@given(rich_values)
def test_value_types_roundtrip(value: Any) -> None:
    assert same(roundtrip(value), value)


@prop_settings(60)
@given(rich_values.filter(lambda v: not _contains_uuid(v)))
def test_value_types_roundtrip_without_pickle(value: Any) -> None:
    """Every value type except UUID has a JSON tag: no pickle needed."""
    assert same(roundtrip(value, allow_pickle=False), value)


def _contains_uuid(value: Any) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    if isinstance(value, dict):
        return any(map(_contains_uuid, value.values()))
    if isinstance(value, list | tuple):
        return any(map(_contains_uuid, value))
    return False


@prop_settings(40)
@given(st.uuids())
def test_uuid_without_pickle_is_refused_with_the_documented_error(value: uuid.UUID) -> None:
    with pytest.raises(SerializationError, match="UUID"):
        serialize({"id": value}, allow_pickle=False)


@prop_settings(80)
@given(st.integers(), rich_values, st.lists(rich_values, max_size=3))
def test_dataclasses_roundtrip(x: int, label: Any, items: list[Any]) -> None:
    point = Point(x, label)
    box = Box(items, note=point)
    box.hidden = x
    back = roundtrip(box)
    assert type(back) is Box and same(back, box) and back.hidden == x


@prop_settings(80)
@given(st.sampled_from(["tuple", "cloudpickle", "enum", "x"]), json_values)
def test_dataclass_fields_named_like_tags_roundtrip(tag: Any, value: Any) -> None:
    original = TypeNamed(tag, value)
    back = roundtrip(original)
    assert type(back) is TypeNamed and same(back, original)


@prop_settings(80)
@given(
    st.text(max_size=8),
    # pydantic writes UTC offsets to the minute: local mean times before ~1900 (Berlin
    # +00:53:28) would lose seconds in pydantic itself, whatever the codec does.
    st.datetimes(min_value=datetime(1900, 1, 1), timezones=_aware_zones()),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(json_keys, json_values, max_size=3),
)
def test_pydantic_models_roundtrip(
    name: str, when: datetime, amount: Decimal, tags: list[str], meta: dict[str, Any]
) -> None:
    model = Profile(name=name, when=when, amount=amount, tags=tags, meta=meta)
    back = roundtrip(model)
    assert type(back) is Profile
    # JSON mode writes each datetime with its offset: equal dumps, equal instants
    assert back.model_dump(mode="json") == model.model_dump(mode="json")


exceptions = st.one_of(
    st.builds(ValueError, st.text(max_size=8)),
    st.builds(KeyError, json_values),
    st.builds(OrderError, json_values, json_values),
    st.builds(RuntimeError),
    st.builds(FatalError, st.text(max_size=8)),
    st.builds(RetryableError, st.text(max_size=8)),
)


@prop_settings(80)
@given(exceptions)
def test_exceptions_come_back_as_their_class_with_their_args(error: BaseException) -> None:
    back = roundtrip(error)
    assert type(back) is type(error)
    assert same(back.args, error.args)
    assert str(back) == str(error)


# ---------------------------------------------------------------------- tag-like data


@prop_settings(150)
@given(arbitrary_json)
def test_tag_shaped_data_roundtrips_as_data(value: Any) -> None:
    """Outside data shaped like tags (even a cloudpickle one) is stored and read back
    as the same plain data, on every decoding path, and nothing is unpickled."""
    text = serialize(value)
    assert same(deserialize(text), value)
    assert same(deserialize(text, allow_pickle=False), value)
    assert same(deserialize_untrusted(text), value)
    assert CANARY.trips == []


_SAFE_TYPES = (tuple, set, frozenset, datetime, date, timedelta, Decimal, bytes)


def only_plain(value: Any) -> bool:
    """Only JSON types and the value types ``deserialize_untrusted`` may rebuild."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is dict:
        return all(type(k) is str and only_plain(v) for k, v in value.items())
    if type(value) in (list, tuple, set, frozenset):
        return all(map(only_plain, value))
    return type(value) in _SAFE_TYPES


@prop_settings(200)
@given(arbitrary_json)
def test_untrusted_json_never_unpickles_or_builds_classes(value: Any) -> None:
    """Raw outside JSON (not escaped by our encoder) with tag objects anywhere."""
    decoded = deserialize_untrusted(json.dumps(value))
    assert CANARY.trips == []
    assert only_plain(decoded), decoded


@prop_settings(150)
@given(arbitrary_json)
def test_trusted_decoding_without_pickle_never_unpickles(value: Any) -> None:
    """allow_pickle=False: a cloudpickle tag is the documented SerializationError."""
    try:
        deserialize(json.dumps(value), allow_pickle=False)
    except SerializationError as error:
        assert "pickle" in str(error)
    assert not [trip for trip in CANARY.trips if trip.startswith("unpickled")]


@prop_settings(150)
@given(st.one_of(st.text(max_size=30), st.binary(max_size=30)))
def test_untrusted_random_text_fails_only_as_json_error(text: str | bytes) -> None:
    try:
        decoded = deserialize_untrusted(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    assert only_plain(decoded)
    assert CANARY.trips == []


# ---------------------------------------------------------------------- regressions


def test_regression_pydantic_dict_field_with_tag_key_roundtrips() -> None:
    """A model field holding outside data shaped like a tag came back as the tag's
    value (a tuple), so the model failed validation and the raw tag dict was returned."""
    model = Profile(
        name="n",
        when=datetime(2026, 1, 2, tzinfo=UTC),
        amount=Decimal("1.50"),
        tags=[],
        meta={"__type__": "tuple", "value": [1]},
    )
    assert roundtrip(model) == model


def test_regression_pydantic_dict_field_is_never_unpickled() -> None:
    """A webhook body kept in a model field must not be able to ask for unpickling when
    the step result holding the model is read back (pickle allowed, the default)."""
    model = Profile(
        name="n",
        when=datetime(2026, 1, 2, tzinfo=UTC),
        amount=Decimal("1"),
        tags=[],
        meta={"body": {"__type__": "cloudpickle", "value": canary_pickle()}},
    )
    roundtrip(model)
    assert CANARY.trips == []


def test_regression_dataclass_field_named_type_roundtrips() -> None:
    """A dataclass with a ``__type__`` field: its field dict was read as a tag."""
    original = TypeNamed("tuple", [1, 2])
    back = roundtrip(original)
    assert type(back) is TypeNamed and back == original


@pytest.mark.parametrize("tag", ["[]", "{}", '{"a": 1}', "[1, 2]"])
def test_regression_untrusted_tag_with_unhashable_name_is_data(tag: str) -> None:
    """``{"__type__": []}`` made ``deserialize_untrusted`` raise ``TypeError``
    (unhashable type) instead of returning the object as data."""
    text = f'{{"__type__": {tag}, "value": 1}}'
    assert deserialize_untrusted(text) == json.loads(text)
