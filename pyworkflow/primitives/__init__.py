"""Primitives a workflow calls: ``sleep``, ``shield``.

Example:
    >>> from pyworkflow.primitives import sleep, shield
"""

from pyworkflow.primitives.shield import shield
from pyworkflow.primitives.sleep import sleep

__all__ = ["shield", "sleep"]
