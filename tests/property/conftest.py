"""Hypothesis profiles for tests/property.

* ``ci`` (the default): modest example counts, ``derandomize=True`` and no example
  database, so every run of the suite tries the same examples and a failure in CI
  reproduces on any machine. The whole directory stays well under a minute.
* ``deep``: 25x the examples, random generation and an example database (in the
  temporary directory, so the repository stays clean) that replays earlier failures
  first, for a developer hunting bugs:
  ``HYPOTHESIS_PROFILE=deep .venv/bin/pytest tests/property``.
* ``dev``: like ``ci`` but random (new examples each run), same counts.

Tests size their budget with :func:`tests.property.strategies.examples`, which scales
a per-test base count by the loaded profile; the per-test timeout (pytest-timeout,
60 s by default) grows with it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_COMMON = {
    "deadline": None,  # 2 shared cores: wall-clock deadlines would only add flakiness
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

settings.register_profile("ci", max_examples=100, derandomize=True, database=None, **_COMMON)
settings.register_profile("dev", max_examples=100, database=None, **_COMMON)
settings.register_profile(
    "deep",
    max_examples=2500,
    database=DirectoryBasedExampleDatabase(
        os.path.join(tempfile.gettempdir(), "pyworkflow-hypothesis")
    ),
    **_COMMON,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_HERE = Path(__file__).parent
_SCALE = max(1, settings.default.max_examples // 100)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """More examples need more time: scale this directory's timeouts with the profile."""
    if _SCALE == 1:
        return
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(60 * _SCALE))
