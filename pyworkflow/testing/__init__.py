"""Helpers for testing code built on pyworkflow.

``StorageConformance`` is the storage conformance suite (see
:mod:`pyworkflow.testing.conformance`). It is imported lazily, so importing this
package does not require pytest.

Example:
    >>> from pyworkflow.testing import StorageConformance
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyworkflow.testing.conformance import StorageConformance

__all__ = ["StorageConformance"]


def __getattr__(name: str) -> Any:
    if name == "StorageConformance":
        from pyworkflow.testing.conformance import StorageConformance

        return StorageConformance
    raise AttributeError(f"module 'pyworkflow.testing' has no attribute {name!r}")
