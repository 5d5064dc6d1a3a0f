"""JSON serialization with type tags, and a cloudpickle fallback behind a setting.

Example:
    >>> from pyworkflow.serialization import deserialize, serialize
    >>> deserialize(serialize({"pair": (1, 2)}))
    {'pair': (1, 2)}
"""

from pyworkflow.serialization.decoder import (
    deserialize,
    deserialize_args,
    deserialize_kwargs,
    enhanced_json_decoder,
)
from pyworkflow.serialization.encoder import (
    EnhancedJSONEncoder,
    is_pickle_allowed,
    serialize,
    serialize_args,
    serialize_kwargs,
    set_pickle_allowed,
)

__all__ = [
    "EnhancedJSONEncoder",
    "deserialize",
    "deserialize_args",
    "deserialize_kwargs",
    "enhanced_json_decoder",
    "is_pickle_allowed",
    "serialize",
    "serialize_args",
    "serialize_kwargs",
    "set_pickle_allowed",
]
