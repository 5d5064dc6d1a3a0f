"""Strategies and budgets shared by the property tests.

``examples(n)`` scales a test's base example count by the loaded hypothesis profile
(see ``conftest.py``): ``ci`` runs ``n``, ``deep`` runs 25 times as many.

Example:
    >>> examples(40) >= 1
    True
"""

from __future__ import annotations

import base64
import dataclasses
from enum import Enum
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from pydantic import BaseModel

# The ``ci`` profile's max_examples: test budgets are written relative to it.
_BASE_PROFILE_EXAMPLES = 100

# Keys that read as a type tag once or after the encoder's escaping ("~" prefixes).
TAG_LIKE_KEYS = ("__type__", "~__type__", "~~__type__", "~~~__type__")
# Every tag the decoder knows, plus near misses; the dangerous ones first.
TAG_NAMES = (
    "cloudpickle",
    "enum",
    "exception",
    "pydantic",
    "dataclass",
    "tuple",
    "set",
    "frozenset",
    "datetime",
    "date",
    "timedelta",
    "decimal",
    "bytes",
    "Tuple",
    "",
    "pickle",
)


def examples(base: int) -> int:
    """``base`` examples under the ``ci`` profile, scaled for the others."""
    loaded = settings.default.max_examples
    return max(1, base * loaded // _BASE_PROFILE_EXAMPLES)


def prop_settings(base: int, **overrides: Any) -> settings:
    """``@settings`` for a property with a budget of ``base`` examples (scaled)."""
    return settings(max_examples=examples(base), deadline=None, **overrides)


# JSON scalars that round-trip through json exactly (NaN never equals itself).
json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)

# Dict keys: ordinary text, tag-like keys, and keys that merely resemble them.
json_keys: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=10),
    st.sampled_from(TAG_LIKE_KEYS),
    st.sampled_from(("value", "class", "args", "message", "~", "__type", "type__", "~x__type__")),
)


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(json_keys, children, max_size=4),
    )


# Plain JSON data (what json.loads can return), including objects with tag-like keys.
json_values: st.SearchStrategy[Any] = st.recursive(json_scalars, _json_containers, max_leaves=12)


# ---------------------------------------------------------------------- canaries
# Things outside data must never reach: each one counts, when touched, in CANARY.


class _Canary:
    def __init__(self) -> None:
        self.trips: list[str] = []

    def trip(self, what: str) -> None:
        self.trips.append(what)


CANARY = _Canary()


def canary_trip(what: str) -> str:
    """Called by unpickling :func:`canary_pickle`'s payload."""
    CANARY.trip(f"unpickled {what}")
    return what


class _Tripwire:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return canary_trip, ("tripwire",)


def canary_pickle() -> str:
    """Base64 of a pickle whose loading calls :func:`canary_trip`."""
    import cloudpickle  # type: ignore[import-untyped]

    return base64.b64encode(cloudpickle.dumps(_Tripwire())).decode("ascii")


class CanaryError(Exception):
    def __init__(self, *args: Any) -> None:
        CANARY.trip("CanaryError()")
        super().__init__(*args)


@dataclasses.dataclass
class CanaryData:
    value: Any = None

    def __post_init__(self) -> None:
        CANARY.trip("CanaryData()")


class CanaryModel(BaseModel):
    value: Any = None

    def model_post_init(self, context: Any, /) -> None:
        CANARY.trip("CanaryModel()")


class CanaryEnum(Enum):
    ONE = 1

    @classmethod
    def _missing_(cls, value: object) -> Any:
        CANARY.trip("CanaryEnum lookup")
        return None


def tag_objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that look like tags: a tag key, a tag name, plausible fields.

    Class paths point at the canaries below (and at things that must never be called),
    values include a real cloudpickle payload that trips the canary when unpickled.
    """
    field_values = st.one_of(
        children,
        st.sampled_from(
            (
                "builtins.ValueError",
                f"{__name__}.CanaryError",
                f"{__name__}.CanaryData",
                f"{__name__}.CanaryModel",
                f"{__name__}.CanaryEnum",
                "os.system",
                "AAAA",
                "2026-01-02",
                "1.5",
                canary_pickle(),
            )
        ),
    )
    return st.builds(
        lambda key, tag, extra: {key: tag, **extra},
        st.one_of(st.just("__type__"), st.sampled_from(TAG_LIKE_KEYS)),
        st.sampled_from(TAG_NAMES),
        st.dictionaries(
            st.sampled_from(("value", "class", "args", "message")), field_values, max_size=3
        ),
    )


def _arbitrary_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(_json_containers(children), tag_objects(children))


# Arbitrary JSON as outside data could send it: tag-shaped objects at any depth.
arbitrary_json: st.SearchStrategy[Any] = st.recursive(
    json_scalars, _arbitrary_containers, max_leaves=12
)
