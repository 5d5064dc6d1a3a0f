"""The workload suites: each runs its scripts for every engine and repetition and
returns samples, medians with ranges, pair-by-pair ratios and table rows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.envs import log
from bench.plan import Plan
from bench.proc import WorkloadFailed, run_script
from bench.stats import ratios, summary


@dataclass(frozen=True)
class Engine:
    """An interpreter under test: ``kind`` is the adapter (``ours``/``upstream``)."""

    name: str
    python: Path
    kind: str


@dataclass
class Context:
    plan: Plan
    engines: list[Engine]  # ours first
    workdir: Path  # where SQLite files go (on disk, like a user's)
    ours_python: Path
    postgres: Any = None  # a tests.servers.PostgresServer, when W2 runs
    errors: list[str] = field(default_factory=list)
    _files: itertools.count = field(default_factory=itertools.count)

    @property
    def ours(self) -> Engine:
        return self.engines[0]

    @property
    def upstreams(self) -> list[Engine]:
        return self.engines[1:]

    def fresh_file(self, label: str) -> str:
        """A path for a new SQLite file."""
        return str(self.workdir / f"{label}-{next(self._files)}.db")

    def attempt(
        self, label: str, python: Path, script: str, args: list[str], timeout: float
    ) -> dict[str, Any] | None:
        """Run a workload script; a failure is recorded in ``errors`` instead of raised."""
        try:
            return run_script(python, script, args, timeout)
        except WorkloadFailed as exc:
            self.errors.append(f"{label}: {exc}")
            log(f"  FAILED {label}: {exc}")
            return None


@dataclass(frozen=True)
class Row:
    """One line of the summary table. ``ratio`` compares this row with ours (or with
    the floor), pair by pair within a repetition; ``ratio_label`` says which way."""

    workload: str
    case: str
    engine: str
    metric: str
    unit: str
    stats: dict[str, Any]
    ratio: dict[str, Any] | None = None
    ratio_label: str = ""


def rotate(items: list[Any], rep: int) -> list[Any]:
    """A different order per repetition, so slow drift of the machine hits all alike."""
    shift = rep % len(items) if items else 0
    return items[shift:] + items[:shift]


def metric_rows(
    workload: str,
    case: str,
    samples: dict[str, list[dict[str, Any]]],
    metric: str,
    unit: str,
    *,
    higher_is_better: bool,
    baseline: str = "ours",
    compare: bool = True,
    label: str | None = None,
) -> list[Row]:
    """Rows of one metric for every engine; non-baseline rows carry "ours is Nx"."""
    base = [s[metric] for s in samples.get(baseline, [])]
    rows = []
    for engine, runs in samples.items():
        values = [s[metric] for s in runs]
        ratio, ratio_label = None, ""
        if compare and engine != baseline and base and values:
            # How many times better ours is, pair by pair (>1: ours is better).
            pair = ratios(base, values) if higher_is_better else ratios(values, base)
            ratio, ratio_label = summary(pair), "ours x"
        rows.append(
            Row(workload, case, engine, label or metric, unit, summary(values), ratio, ratio_label)
        )
    return rows
