"""Encode Python values as JSON with type tags.

Values JSON cannot express are written as tagged objects ``{"__type__": T, ...}`` that
:mod:`pyworkflow.serialization.decoder` turns back into the original type. Tuples,
enums, exceptions, pydantic models and dataclasses get JSON tags; anything else falls
back to a ``cloudpickle`` tag, but only while pickle is allowed (see
:func:`set_pickle_allowed`).

The output is deterministic for equal inputs because step ids hash it: dict order is
kept and set items are sorted by their encoded form.

Example:
    >>> serialize({"point": (1, 2)})
    '{"point": {"__type__": "tuple", "value": [1, 2]}}'
    >>> serialize_args(1, "a")
    '[1, "a"]'
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from pyworkflow.core.exceptions import SerializationError

__all__ = [
    "EnhancedJSONEncoder",
    "is_pickle_allowed",
    "serialize",
    "serialize_args",
    "serialize_kwargs",
    "set_pickle_allowed",
]

# Exact types that JSON writes natively. Checked with ``type(x) in ...`` rather than
# isinstance so that subclasses (IntEnum, str-based enums, namedtuples) take the tagged
# path instead of silently losing their type.
_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})
# Key types json.dumps itself turns into strings (True -> "true", 1 -> "1").
_KEY_TYPES = (str, int, float, bool)

_pickle_allowed = True


def set_pickle_allowed(flag: bool) -> None:
    """Allow or refuse the cloudpickle fallback process-wide (default: allowed).

    ``configure(allow_pickle=False)`` calls this. When refused, encoding an object
    without a JSON tag and decoding a ``cloudpickle`` tag both raise
    :class:`~pyworkflow.core.exceptions.SerializationError`.

    Example:
        >>> set_pickle_allowed(False); is_pickle_allowed()
        False
        >>> set_pickle_allowed(True)
    """
    global _pickle_allowed
    _pickle_allowed = bool(flag)


def is_pickle_allowed() -> bool:
    """Whether the cloudpickle fallback is currently allowed.

    Example:
        >>> is_pickle_allowed()
        True
    """
    return _pickle_allowed


def class_path(cls: type) -> str:
    """The importable ``"module.Qualname"`` of a class, as stored in tags.

    Example:
        >>> class_path(ValueError)
        'builtins.ValueError'
    """
    return f"{cls.__module__}.{cls.__qualname__}"


def _encode(obj: Any, allow_pickle: bool) -> Any:
    """Turn ``obj`` into plain JSON data (dicts, lists, scalars, tagged dicts).

    Containers are copied only when something inside them changes, so plain JSON data
    (the common case on the hot path) is returned as is without allocating.
    """
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind is dict:
        return _encode_dict(obj, allow_pickle)
    if kind is list:
        return _encode_list(obj, allow_pickle)
    if kind is tuple:
        return {"__type__": "tuple", "value": _encode_items(obj, allow_pickle)}
    return _encode_other(obj, allow_pickle)


def _encode_list(items: list[Any], allow_pickle: bool) -> list[Any]:
    scalars = _SCALARS
    for index, item in enumerate(items):
        if type(item) in scalars:
            continue
        encoded = _encode(item, allow_pickle)
        if encoded is not item:
            # First changed item: copy the untouched prefix, then encode the rest.
            out = items[:index]
            out.append(encoded)
            out.extend(_encode_items(items[index + 1 :], allow_pickle))
            return out
    return items


def _encode_items(items: Any, allow_pickle: bool) -> list[Any]:
    return [item if type(item) in _SCALARS else _encode(item, allow_pickle) for item in items]


def _check_key(key: Any) -> None:
    if not (key is None or isinstance(key, _KEY_TYPES)):
        raise SerializationError(
            f"Cannot serialize dict key {key!r} of type {type(key).__qualname__}: "
            "JSON object keys must be str, int, float, bool or None.",
            data_type=type(key).__qualname__,
        )


TAG_KEY = "__type__"


def is_tag_like(key: str) -> bool:
    """Whether a dict key would read as a type tag (``__type__``, ``~__type__``, ...)."""
    return key.endswith(TAG_KEY) and key.lstrip("~") == TAG_KEY


def _escape_keys(mapping: dict[Any, Any]) -> dict[Any, Any]:
    # Data that merely looks like a tag (a dict with a "__type__" key, e.g. a webhook
    # payload) gets its key prefixed with "~", so that decoding can never mistake it
    # for a tag: outside data must not be able to ask for a class or for unpickling.
    return {("~" + k if type(k) is str and is_tag_like(k) else k): v for k, v in mapping.items()}


def _encode_dict(
    mapping: dict[Any, Any], allow_pickle: bool, escaped: bool = False
) -> dict[Any, Any]:
    scalars = _SCALARS
    out: dict[Any, Any] | None = None
    for key, value in mapping.items():
        if type(key) is not str:
            _check_key(key)
        elif not escaped and key[-8:] == "__type__" and is_tag_like(key):
            return _encode_dict(_escape_keys(mapping), allow_pickle, True)
        if out is None:
            if type(value) in scalars:
                continue
            encoded = _encode(value, allow_pickle)
            if encoded is value:
                continue
            # First changed value: copy the untouched keys that precede it.
            out = {}
            for done_key, done_value in mapping.items():
                if done_key is key:
                    break
                out[done_key] = done_value
            out[key] = encoded
        else:
            out[key] = value if type(value) in scalars else _encode(value, allow_pickle)
    return mapping if out is None else out


def _sorted_items(items: Any, allow_pickle: bool) -> list[Any]:
    # Set iteration order depends on hashing (randomised per process for str), so sort
    # by the encoded form to keep the output, and therefore step ids, stable.
    encoded = _encode_items(items, allow_pickle)
    return sorted(encoded, key=lambda item: json.dumps(item, sort_keys=True))


def _encode_exception(exc: BaseException, allow_pickle: bool) -> dict[str, Any]:
    args: list[Any] = []
    for arg in exc.args:
        try:
            args.append(_encode(arg, allow_pickle))
        except (SerializationError, RecursionError):
            # An error report must never fail to be recorded because of an odd argument.
            args.append(repr(arg))
    return {
        "__type__": "exception",
        "class": class_path(type(exc)),
        "message": str(exc),
        "args": args,
    }


def _encode_other(obj: Any, allow_pickle: bool) -> Any:
    """Tag everything that is not an exact JSON type; see the module docstring."""
    if isinstance(obj, Enum):
        return {
            "__type__": "enum",
            "class": class_path(type(obj)),
            "value": _encode(obj.value, allow_pickle),
        }
    if isinstance(obj, dict):
        return _encode_dict(dict(obj), allow_pickle)
    if isinstance(obj, tuple):
        return {"__type__": "tuple", "value": _encode_items(obj, allow_pickle)}
    if isinstance(obj, list):
        return _encode_list(list(obj), allow_pickle)
    if isinstance(obj, str | int | float):
        return obj  # other subclasses of JSON scalars: json writes their base value
    tagged = _encode_builtin(obj, allow_pickle)
    if tagged is not None:
        return tagged
    tagged = _encode_model(obj, allow_pickle)
    if tagged is not None:
        return tagged
    return _encode_pickle(obj, allow_pickle)


def _encode_builtin(obj: Any, allow_pickle: bool) -> dict[str, Any] | None:
    if isinstance(obj, datetime):  # before date: datetime is a date subclass
        return {"__type__": "datetime", "value": obj.isoformat()}
    if isinstance(obj, date):
        return {"__type__": "date", "value": obj.isoformat()}
    if isinstance(obj, timedelta):
        return {"__type__": "timedelta", "value": obj.total_seconds()}
    if isinstance(obj, Decimal):
        return {"__type__": "decimal", "value": str(obj)}
    if isinstance(obj, bytes):
        return {"__type__": "bytes", "value": base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, frozenset):
        return {"__type__": "frozenset", "value": _sorted_items(obj, allow_pickle)}
    if isinstance(obj, set):
        return {"__type__": "set", "value": _sorted_items(obj, allow_pickle)}
    if isinstance(obj, BaseException):
        return _encode_exception(obj, allow_pickle)
    return None


def _encode_model(obj: Any, allow_pickle: bool) -> dict[str, Any] | None:
    # Only look for pydantic if something already imported it: an object cannot be a
    # BaseModel otherwise, and importing pydantic here would slow every cold start.
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(obj, pydantic.BaseModel):
        try:
            value = obj.model_dump(mode="json")
        except Exception as exc:
            if allow_pickle:
                return None  # e.g. arbitrary_types_allowed fields: let pickle try
            raise SerializationError(
                f"Cannot serialize pydantic model {type(obj).__qualname__} as JSON "
                f"({exc}); use JSON-compatible field types or configure(allow_pickle=True).",
                data_type=type(obj).__qualname__,
            ) from exc
        # The dump is plain JSON, but its dicts may hold keys that read as tags: escape
        # them like any data, or decoding would take them for tags (even pickle ones).
        return {
            "__type__": "pydantic",
            "class": class_path(type(obj)),
            "value": _encode(value, allow_pickle),
        }
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {
            field.name: _encode(getattr(obj, field.name), allow_pickle)
            for field in dataclasses.fields(obj)
        }
        # A field may be named like a tag: escaped as a dict key would be.
        return {
            "__type__": "dataclass",
            "class": class_path(type(obj)),
            "value": _escape_keys(fields),
        }
    return None


def _encode_pickle(obj: Any, allow_pickle: bool) -> dict[str, Any]:
    type_name = type(obj).__qualname__
    if not allow_pickle:
        raise SerializationError(
            f"Cannot serialize object of type {type_name} without pickle: make it a "
            "dataclass or pydantic model, or configure(allow_pickle=True).",
            data_type=type_name,
        )
    import cloudpickle  # type: ignore[import-untyped]  # lazy: only for the fallback

    try:
        payload: bytes = cloudpickle.dumps(obj)
    except Exception as exc:
        raise SerializationError(
            f"Cannot serialize object of type {type_name}: it has no JSON form and "
            f"cloudpickle failed ({exc}). Pass plain data, a dataclass or a pydantic "
            "model instead.",
            data_type=type_name,
        ) from exc
    return {"__type__": "cloudpickle", "value": base64.b64encode(payload).decode("ascii")}


def _prepare(obj: Any, allow_pickle: bool | None) -> Any:
    allow = _pickle_allowed if allow_pickle is None else allow_pickle
    try:
        return _encode(obj, allow)
    except RecursionError as exc:
        raise SerializationError(
            f"Cannot serialize object of type {type(obj).__qualname__}: it contains a "
            "circular reference or is nested too deeply.",
            data_type=type(obj).__qualname__,
        ) from exc


class EnhancedJSONEncoder(json.JSONEncoder):
    """A ``json.JSONEncoder`` that writes tagged objects for non-JSON values.

    Usable directly with ``json.dumps(obj, cls=EnhancedJSONEncoder)``; tuples and enum
    subclasses of str/int are tagged too, which a plain ``default()`` hook cannot do.
    Pass ``allow_pickle=`` to override the process-wide setting.

    Example:
        >>> json.dumps({"at": date(2024, 1, 2)}, cls=EnhancedJSONEncoder)
        '{"at": {"__type__": "date", "value": "2024-01-02"}}'
    """

    def __init__(self, *args: Any, allow_pickle: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allow_pickle = allow_pickle

    def _allow(self) -> bool:
        return _pickle_allowed if self.allow_pickle is None else self.allow_pickle

    def default(self, o: Any) -> Any:
        """Tag one value json cannot write; raises ``SerializationError`` if impossible."""
        return _encode_other(o, self._allow())

    def encode(self, o: Any) -> str:
        """Encode ``o`` to a JSON string, tagging tuples and other non-JSON values."""
        chunks = super().iterencode(_prepare(o, self.allow_pickle), _one_shot=True)
        return "".join(chunks)

    def iterencode(self, o: Any, _one_shot: bool = False) -> Iterator[str]:
        """Like ``json.JSONEncoder.iterencode``, after tagging non-JSON values."""
        return super().iterencode(_prepare(o, self.allow_pickle), _one_shot)


def serialize(obj: Any, *, allow_pickle: bool | None = None) -> str:
    """Encode ``obj`` as a JSON string with type tags.

    ``allow_pickle`` overrides the process-wide setting for this call. Raises
    :class:`~pyworkflow.core.exceptions.SerializationError` for values that cannot be
    encoded.

    Example:
        >>> serialize({"n": 1, "tags": ("a", "b")})
        '{"n": 1, "tags": {"__type__": "tuple", "value": ["a", "b"]}}'
    """
    # The prepared value holds only JSON types, so the stdlib's cached default encoder
    # (the fastest path) writes it exactly as EnhancedJSONEncoder would.
    return json.dumps(_prepare(obj, allow_pickle))


def serialize_args(*args: Any) -> str:
    """Encode positional arguments as a JSON array string.

    Example:
        >>> serialize_args(1, (2, 3))
        '[1, {"__type__": "tuple", "value": [2, 3]}]'
    """
    return json.dumps(_prepare(list(args), None))


def serialize_kwargs(**kwargs: Any) -> str:
    """Encode keyword arguments as a JSON object string.

    Example:
        >>> serialize_kwargs(name="x", retries=3)
        '{"name": "x", "retries": 3}'
    """
    return json.dumps(_prepare(kwargs, None))
