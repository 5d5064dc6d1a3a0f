"""``Record``: one ``to_dict``/``from_dict`` for every storage dataclass.

``to_dict`` writes datetimes as ISO strings, enums by value and nested records as
dicts; ``from_dict`` reads them back using the field's declared type, and lets a
field keep its default when the key is missing or holds None (unless the field is
optional, where None is a value).

Example:
    >>> from dataclasses import dataclass
    >>> from datetime import UTC, datetime
    >>> @dataclass
    ... class Point(Record):
    ...     at: datetime
    ...     label: str = "x"
    >>> p = Point(datetime(2026, 1, 1, tzinfo=UTC))
    >>> p.to_dict()
    {'at': '2026-01-01T00:00:00+00:00', 'label': 'x'}
    >>> Point.from_dict({"at": "2026-01-01T00:00:00+00:00", "label": None}) == p
    True
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ClassVar, Self


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from ISO text or a datetime (naive values are UTC)."""
    if value is None or value == "":
        return None
    result = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return result if result.tzinfo else result.replace(tzinfo=UTC)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _decode(tp: Any, value: Any) -> Any:
    if _is_union(tp):
        if value is None:
            return None
        inner = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return _decode(inner[0], value)
    if tp is datetime:
        return parse_datetime(value)
    origin = typing.get_origin(tp)
    if origin is list:
        (item_type,) = typing.get_args(tp)
        return [_decode(item_type, item) for item in value]
    if origin is dict:
        return dict(value)
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return tp(value)
        if issubclass(tp, Record):
            return tp.from_dict(value)
        if tp is bool:
            return bool(value)
        if tp is int:
            return int(value)
    return value


class Record:
    """Mixin for dataclasses stored by backends."""

    #: Legacy keys ``from_dict`` also accepts: alias -> field name.
    ALIASES: ClassVar[dict[str, str]] = {}
    _hints_cache: ClassVar[dict[type, dict[str, Any]]] = {}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (ISO datetimes, enum values, nested dicts)."""
        return {f.name: _encode(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """The inverse of :meth:`to_dict`; missing keys take the defaults."""
        hints = Record._hints_cache.get(cls)
        if hints is None:
            hints = Record._hints_cache[cls] = typing.get_type_hints(cls)
        aliases = {field: alias for alias, field in cls.ALIASES.items()}
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            tp = hints[f.name]
            has_default = f.default is not MISSING or f.default_factory is not MISSING
            for key in (f.name, aliases.get(f.name)):
                if key is None or key not in d:
                    continue
                if d[key] is None and has_default and not _is_union(tp):
                    continue  # keep the default (or try the legacy key)
                kwargs[f.name] = _decode(tp, d[key])
                break
        return cls(**kwargs)
