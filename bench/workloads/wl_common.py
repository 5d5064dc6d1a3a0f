"""Helpers shared by the workload scripts (run as files, by the interpreter under test).

A workload script picks its engine adapter with ``--engine``: ``adapter_ours`` drives
this repository's pyworkflow, ``adapter_upstream`` drives pyworkflow-engine from PyPI.
Both export the same names, so every workload is one text for both sides. The script
prints one JSON object as its last line of output; the harness reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import json
import os
import statistics
from collections.abc import Iterator
from types import ModuleType
from typing import Any


def parser(description: str) -> argparse.ArgumentParser:
    """The options every workload takes: the engine and the storage URL."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--engine", choices=["ours", "upstream"], required=True)
    p.add_argument("--store", required=True, help="SQLite file path or postgresql:// DSN")
    return p


def engine(name: str) -> ModuleType:
    """The adapter module of ``name``, with logging silenced on both sides.

    Upstream logs every step at INFO to stderr by default; a benchmark of the engine
    should not measure a terminal. Removing loguru's handlers makes log calls cheap
    for both engines alike.
    """
    from loguru import logger

    logger.remove()
    return importlib.import_module(f"adapter_{name}")


@contextlib.contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """cProfile the block into ``path`` (nothing when ``path`` is None)."""
    if path is None:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(path)


def rss_mb() -> float:
    """This process's resident set size in MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def files_bytes(path: str) -> int:
    """Size of a SQLite file with its -wal and -shm (or -journal) companions."""
    return sum(
        os.path.getsize(path + suffix)
        for suffix in ("", "-wal", "-shm", "-journal")
        if os.path.exists(path + suffix)
    )


def ends_median(values: list[float], count: int = 3) -> tuple[float, float]:
    """Median of the first ``count`` and of the last ``count`` values."""
    if not values:
        return float("nan"), float("nan")
    return statistics.median(values[:count]), statistics.median(values[-count:])


def emit(result: dict[str, Any]) -> None:
    """Hand the result to the harness: one JSON line, last on stdout."""
    print(json.dumps(result), flush=True)
