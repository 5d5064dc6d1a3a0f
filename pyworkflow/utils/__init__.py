"""Small helpers shared across pyworkflow: durations and retry delays.

Example:
    >>> from pyworkflow.utils import parse_duration
    >>> parse_duration("1h30m")
    5400
"""

from pyworkflow.utils.duration import (
    duration_to_timedelta,
    format_duration,
    parse_duration,
    parse_duration_seconds,
    parse_duration_string,
)
from pyworkflow.utils.retry import (
    FIXED_RETRY_DELAY_SECONDS,
    compute_retry_delay,
    describe_retry_delay,
    validate_retry_delay,
)

__all__ = [
    "FIXED_RETRY_DELAY_SECONDS",
    "compute_retry_delay",
    "describe_retry_delay",
    "duration_to_timedelta",
    "format_duration",
    "parse_duration",
    "parse_duration_seconds",
    "parse_duration_string",
    "validate_retry_delay",
]
