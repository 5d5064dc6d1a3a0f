"""Every docstring example in the package runs (DESIGN.md §4: docstrings with examples)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pyworkflow

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(pyworkflow.__path__, "pyworkflow.")
    if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_names_have_docstring_examples() -> None:
    missing = [
        name
        for name in pyworkflow.__all__
        if not name.startswith("_")
        and callable(getattr(pyworkflow, name))
        and ">>>" not in (getattr(pyworkflow, name).__doc__ or "")
        and "::" not in (getattr(pyworkflow, name).__doc__ or "")
    ]
    # A new public name must come with an example.
    assert missing == []
