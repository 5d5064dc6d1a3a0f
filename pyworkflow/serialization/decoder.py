"""Decode JSON written by :mod:`pyworkflow.serialization.encoder`.

Every JSON object carrying ``__type__`` goes through :func:`enhanced_json_decoder`.
Inner objects are decoded first, so a tag's ``value`` already holds decoded items.

Decoding is lenient where upstream was: an unknown tag, a malformed tag or a class that
cannot be imported gives back the raw dict, and an exception whose class cannot be
rebuilt comes back as a plain ``Exception``. The one deliberate failure is a
``cloudpickle`` tag while pickle is refused: outside data (hook payloads, CLI input)
must never be unpickled.

Example:
    >>> deserialize('{"__type__": "tuple", "value": [1, 2]}')
    (1, 2)
    >>> deserialize_kwargs('{"a": 1}')
    {'a': 1}
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
import importlib
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import partial
from typing import Any

from pyworkflow.core.exceptions import SerializationError
from pyworkflow.serialization.encoder import is_pickle_allowed, is_tag_like

__all__ = [
    "deserialize",
    "deserialize_args",
    "deserialize_kwargs",
    "deserialize_untrusted",
    "enhanced_json_decoder",
    "resolve_class",
]

# Successful class lookups only: a failed import may succeed later in the process.
_class_cache: dict[str, Any] = {}


def _resolve_class(path: object) -> Any:
    """Import ``"module.Qualname"`` (nested qualnames too); None if it cannot be found."""
    if not isinstance(path, str) or not path:
        return None
    cached = _class_cache.get(path)
    if cached is not None:
        return cached
    parts = path.split(".")
    found: Any = None
    if len(parts) == 1:
        # upstream stored bare class names for exceptions ("ValueError")
        found = getattr(builtins, path, None)
    # Try the longest module prefix first; the remaining parts are attributes.
    for split in range(len(parts) - 1, 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except Exception:
            continue
        for attr in parts[split:]:
            found = getattr(found, attr, None)
        break
    if isinstance(found, type):
        _class_cache[path] = found
        return found
    return None


def resolve_class(path: str) -> type[Any] | None:
    """The class named ``"module.Qualname"``, imported if needed; None if not found.

    Example:
        >>> resolve_class("decimal.Decimal")
        <class 'decimal.Decimal'>
    """
    found = _resolve_class(path)
    return found if isinstance(found, type) else None


def _items(dct: dict[str, Any]) -> list[Any]:
    value = dct["value"]
    if not isinstance(value, list):
        raise TypeError("tag value must be a list")
    return value


def _decode_tuple(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return tuple(_items(dct))


def _decode_set(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return set(_items(dct))


def _decode_frozenset(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return frozenset(_items(dct))


def _decode_datetime(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return datetime.fromisoformat(dct["value"])


def _decode_date(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return date.fromisoformat(dct["value"])


def _decode_timedelta(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return timedelta(seconds=dct["value"])


def _decode_decimal(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return Decimal(dct["value"])


def _decode_bytes(dct: dict[str, Any], allow_pickle: bool) -> Any:
    return base64.b64decode(dct["value"], validate=True)


def _decode_enum(dct: dict[str, Any], allow_pickle: bool) -> Any:
    cls = _resolve_class(dct.get("class"))
    if cls is None or not issubclass(cls, Enum):
        return dct
    return cls(dct["value"])


def _decode_exception(dct: dict[str, Any], allow_pickle: bool) -> Any:
    args = dct.get("args")
    if not isinstance(args, list | tuple):
        message = dct.get("message")
        args = [] if message is None else [message]
    cls = _resolve_class(dct.get("class"))
    # Only exception classes are called: the class path may come from outside data.
    if cls is not None and issubclass(cls, BaseException):
        try:
            return cls(*args)
        except Exception:
            pass  # a custom __init__ with another signature: fall back below
    return Exception(*args)


def _decode_pydantic(dct: dict[str, Any], allow_pickle: bool) -> Any:
    cls = _resolve_class(dct.get("class"))
    if cls is None or not callable(getattr(cls, "model_validate", None)):
        return dct
    from pydantic import BaseModel  # imported by the model's module anyway

    if not issubclass(cls, BaseModel):
        return dct
    return cls.model_validate(dct["value"])


def _decode_dataclass(dct: dict[str, Any], allow_pickle: bool) -> Any:
    cls: Callable[..., Any] | None = _resolve_class(dct.get("class"))
    value = dct.get("value")
    if cls is None or not dataclasses.is_dataclass(cls) or not isinstance(value, dict):
        return dct
    init_names = {field.name for field in dataclasses.fields(cls) if field.init}
    instance = cls(**{k: v for k, v in value.items() if k in init_names})
    for name, item in value.items():
        if name not in init_names:
            # init=False fields: restore them the way dataclasses do, frozen or not
            object.__setattr__(instance, name, item)
    return instance


def _decode_pickle(dct: dict[str, Any], allow_pickle: bool) -> Any:
    if not allow_pickle:
        raise SerializationError(
            "Refusing to decode a cloudpickle value: pickle is not allowed "
            "(configure(allow_pickle=False)); unpickling data can run arbitrary code. "
            "Send plain JSON instead, or configure(allow_pickle=True) for trusted data.",
            data_type="cloudpickle",
        )
    import cloudpickle  # type: ignore[import-untyped]  # lazy: only for the fallback

    return cloudpickle.loads(base64.b64decode(dct["value"]))


_DECODERS: dict[str, Callable[[dict[str, Any], bool], Any]] = {
    "tuple": _decode_tuple,
    "set": _decode_set,
    "frozenset": _decode_frozenset,
    "datetime": _decode_datetime,
    "date": _decode_date,
    "timedelta": _decode_timedelta,
    "decimal": _decode_decimal,
    "bytes": _decode_bytes,
    "enum": _decode_enum,
    "exception": _decode_exception,
    "pydantic": _decode_pydantic,
    "dataclass": _decode_dataclass,
    "cloudpickle": _decode_pickle,
}


def _decode_tagged(dct: dict[str, Any], allow_pickle: bool) -> Any:
    tag = dct.get("__type__")
    decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        return dct
    try:
        return decoder(dct, allow_pickle)
    except SerializationError:
        raise
    except Exception:
        # A malformed tag (or a class that rejects its stored fields) is left as data
        # rather than failing the whole document, as upstream did.
        return dct


def _unescape(dct: dict[str, Any]) -> dict[str, Any]:
    """Undo the encoder's key escaping (``~__type__`` -> ``__type__``, one ``~`` less)."""
    for key in dct:
        if key[-8:] == "__type__" and key[:1] == "~" and is_tag_like(key):
            return {(k[1:] if k[:1] == "~" and is_tag_like(k) else k): v for k, v in dct.items()}
    return dct


def enhanced_json_decoder(dct: dict[str, Any]) -> Any:
    """``json.loads`` object hook that rebuilds tagged values.

    Uses the process-wide pickle setting (see ``set_pickle_allowed``).

    Example:
        >>> json.loads('{"__type__": "decimal", "value": "1.10"}',
        ...            object_hook=enhanced_json_decoder)
        Decimal('1.10')
    """
    if "__type__" not in dct:
        return _unescape(dct)
    return _decode_tagged(dct, is_pickle_allowed())


def deserialize(s: str | bytes | bytearray, *, allow_pickle: bool | None = None) -> Any:
    """Decode a string produced by ``serialize``.

    ``allow_pickle`` overrides the process-wide setting for this call. Raises
    ``SerializationError`` for a ``cloudpickle`` tag while pickle is refused, and
    ``json.JSONDecodeError`` for text that is not JSON.

    Example:
        >>> deserialize('[1, {"__type__": "set", "value": [2]}]')
        [1, {2}]
    """
    if allow_pickle is None:
        return json.loads(s, object_hook=enhanced_json_decoder)
    return json.loads(s, object_hook=partial(_decode_tagged_hook, allow_pickle=allow_pickle))


# Tags that rebuild plain values only. The others import a class named by the data
# (enum, exception, pydantic, dataclass) or unpickle it, which outside data must never
# be able to ask for.
_SAFE_TAGS = frozenset(
    {"tuple", "set", "frozenset", "datetime", "date", "timedelta", "decimal", "bytes"}
)


def _decode_safe_tag(dct: dict[str, Any]) -> Any:
    tag = dct.get("__type__")
    if tag is None:
        return _unescape(dct)
    if not isinstance(tag, str) or tag not in _SAFE_TAGS:
        return dct
    return _decode_tagged(dct, False)


def deserialize_untrusted(s: str | bytes | bytearray) -> Any:
    """Decode data that came from outside (hook payloads, CLI input).

    Only value tags (tuple, set, datetime, decimal, bytes, ...) are rebuilt; a tag
    that would import a class or unpickle stays a plain dict.

    Example:
        >>> deserialize_untrusted('{"__type__": "cloudpickle", "value": "x"}')
        {'__type__': 'cloudpickle', 'value': 'x'}
        >>> deserialize_untrusted('{"at": {"__type__": "date", "value": "2026-01-02"}}')
        {'at': datetime.date(2026, 1, 2)}
    """
    return json.loads(s, object_hook=_decode_safe_tag)


def _decode_tagged_hook(dct: dict[str, Any], *, allow_pickle: bool) -> Any:
    if "__type__" not in dct:
        return _unescape(dct)
    return _decode_tagged(dct, allow_pickle)


def deserialize_args(s: str | bytes | bytearray) -> tuple[Any, ...]:
    """Decode ``serialize_args`` output to a tuple; anything but a JSON array gives ``()``.

    Example:
        >>> deserialize_args('[1, "a"]')
        (1, 'a')
        >>> deserialize_args('{"a": 1}')
        ()
    """
    data = deserialize(s)
    return tuple(data) if isinstance(data, list) else ()


def deserialize_kwargs(s: str | bytes | bytearray) -> dict[str, Any]:
    """Decode ``serialize_kwargs`` output to a dict; anything but a JSON object gives ``{}``.

    Example:
        >>> deserialize_kwargs('{"name": "x"}')
        {'name': 'x'}
        >>> deserialize_kwargs('[1]')
        {}
    """
    data = deserialize(s)
    return data if isinstance(data, dict) else {}
