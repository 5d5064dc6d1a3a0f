"""Soak mode of the chaos harness: every scenario, again and again, until time is up.

Usage::

    python -m tests.chaos.soak --minutes 30 [--seed S] [--scenarios a,b] [--scale X]

Scenarios run in turn — the Celery ones (tests/chaos/scenarios_celery.py) in worlds
of real processes kept for the whole soak (one on SQLite, one on PostgreSQL, started
when first needed), the local ones (tests/chaos/scenarios_local.py) each in a fresh
directory — with seeds ``S, S+1, ...`` (one per round), at sizes multiplied by
``--scale`` (``PYWORKFLOW_CHAOS_SCALE``; the short mode of CI is 1). A line is
printed per iteration, a failing one with its violations and the command that replays
it; at the end, every Celery world's whole storage is checked once more and a table
sums it up. ``--minutes 0`` runs one round (to replay a seed). Exit status 1 when a
run was lost, a result or side effect was duplicated, or any other invariant broke.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from rich.console import Console
from rich.table import Table

from pyworkflow.testing.invariants import Violation, check_invariants
from tests.chaos.celery_world import World
from tests.chaos.harness import ChaosResult, run_scenario
from tests.chaos.scenarios_celery import CELERY_SCENARIOS, Scenario
from tests.chaos.scenarios_local import LOCAL_SCENARIOS
from tests.servers import PostgresServer, RedisServer

# Wide enough for the table when the output is a file or a pipe (CI logs).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


@dataclass
class Tally:
    """One row of the summary table."""

    iterations: int = 0
    runs: int = 0
    faults: int = 0
    lost: int = 0
    duplicates: int = 0
    violations: int = 0
    seconds: float = 0.0
    failed_seeds: list[int] = field(default_factory=list)

    def add(self, result: ChaosResult) -> None:
        self.iterations += 1
        self.runs += result.runs
        self.faults += result.faults
        self.lost += result.lost
        self.duplicates += result.duplicates
        self.violations += len(result.violations)
        self.seconds += result.seconds
        if not result.ok:
            self.failed_seeds.append(result.seed)


class Worlds:
    """The Celery worlds of the soak, started on first use, repaired between
    iterations, closed at the end."""

    def __init__(self) -> None:
        self.redis: RedisServer | None = None
        self.pg: PostgresServer | None = None
        self.worlds: dict[str, World] = {}

    async def get(self, kind: str) -> World:
        world = self.worlds.get(kind)
        if world is None:
            self.redis = self.redis or RedisServer.start()
            if kind == "postgres":
                self.pg = self.pg or PostgresServer.start()
            pg = self.pg if kind == "postgres" else None
            world = World(self.redis, pg)
            await world.blocking(world.start)
            await world.connect()
            self.worlds[kind] = world
        world.activate()
        await world.blocking(world.repair)
        return world

    async def drop(self, kind: str) -> None:
        """Forget a world an iteration broke (the next one starts a new world)."""
        world = self.worlds.pop(kind, None)
        if world is not None:
            with contextlib.suppress(Exception):  # it may be what broke
                await world.disconnect()
            world.close()

    async def final_checks(self) -> list[ChaosResult]:
        """The invariants over each world's whole storage, after the last iteration."""
        results = []
        for kind, world in self.worlds.items():
            world.activate()
            report = await check_invariants(world.storage)
            note = f"whole storage: {report.summary().splitlines()[0]}"
            name = f"celery_final_check_{kind}"
            results.append(ChaosResult(name, 0, report.runs, 0, report.violations, notes=[note]))
        return results

    async def close(self) -> None:
        for kind in list(self.worlds):
            await self.drop(kind)
        for server in (self.redis, self.pg):
            if server is not None:
                server.close()


Runner = Callable[[int], Awaitable[ChaosResult]]


async def _celery_iteration(
    worlds: Worlds, base: Path, name: str, scenario: Scenario, kind: str, seed: int
) -> ChaosResult:
    world = await worlds.get(kind)
    try:
        outcome = await scenario(world, seed)
    except BaseException:
        await worlds.drop(kind)  # its processes may be in any state: start a new one
        raise
    outcome.scenario = name
    result = outcome.result()
    if not result.ok:  # the processes' logs, for the post-mortem
        kept = base / f"{name}-{seed}"
        kept.mkdir(parents=True, exist_ok=True)
        for log in world.workdir.glob("*.log"):
            shutil.copy(log, kept / log.name)
        result.notes.append(f"logs of the world's processes copied to {kept}")
    return result


async def _local_iteration(base: Path, build: Callable[[int], Any], seed: int) -> ChaosResult:
    scenario = build(seed)
    workdir = base / f"{scenario.name}-{seed}"
    result = await run_scenario(scenario, workdir)
    if result.ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        result.notes.append(f"kept {workdir}")
    return result


def runners(worlds: Worlds, base: Path) -> dict[str, Runner]:
    """A coroutine per scenario name that runs one iteration with a given seed."""
    found: dict[str, Runner] = {}
    for name, (scenario, kind) in CELERY_SCENARIOS.items():
        found[name] = functools.partial(_celery_iteration, worlds, base, name, scenario, kind)
    for name, build in LOCAL_SCENARIOS.items():
        found[name] = functools.partial(_local_iteration, base, build)
    return found


def _error_result(name: str, seed: int, began: float) -> ChaosResult:
    detail = traceback.format_exc().strip().splitlines()[-1]
    notes = [traceback.format_exc()]
    error = Violation("scenario_error", name, detail)
    return ChaosResult(name, seed, 0, 0, [error], time.monotonic() - began, notes)


def _line(clock: float, result: ChaosResult, faults: int) -> str:
    mark = "[green]ok[/]" if result.ok else "[bold red]FAIL[/]"
    return (
        f"[{int(clock // 60):02d}:{int(clock % 60):02d}] {mark} {result.scenario} "
        f"seed={result.seed} runs={result.runs} faults={result.faults} lost={result.lost} "
        f"dup={result.duplicates} violations={len(result.violations)} "
        f"({result.seconds:.1f}s)  total faults={faults}"
    )


async def soak(minutes: float, seed: int, names: list[str], base: Path) -> dict[str, Tally]:
    worlds = Worlds()
    available = runners(worlds, base)
    tallies = {name: Tally() for name in names}
    began, deadline = time.monotonic(), time.monotonic() + minutes * 60
    faults, rounds = 0, 0
    try:
        while rounds == 0 or time.monotonic() < deadline:
            for name in list(names):
                if rounds and time.monotonic() >= deadline:
                    break
                started = time.monotonic()
                try:
                    result = await available[name](seed + rounds)
                except NotImplementedError:
                    console.print(f"{name}: not implemented yet, left out")
                    names.remove(name)
                    del tallies[name]
                    continue
                except Exception:
                    result = _error_result(name, seed + rounds, started)
                tallies[name].add(result)
                faults += result.faults
                console.print(_line(time.monotonic() - began, result, faults))
                if not result.ok:
                    console.print(result.summary(), markup=False)
            rounds += 1
            if not names:
                break
        for result in await worlds.final_checks():
            tallies.setdefault(result.scenario, Tally()).add(result)
            if not result.ok:
                console.print(result.summary(), markup=False)
    finally:
        await worlds.close()
    return tallies


def table(tallies: dict[str, Tally], elapsed: float) -> Table:
    out = Table(title=f"chaos soak: {elapsed / 60:.1f} min")
    for heading in ("scenario", "iterations", "runs", "faults", "lost runs"):
        out.add_column(heading, justify="left" if heading == "scenario" else "right")
    out.add_column("duplicate step completions", justify="right")
    out.add_column("violations", justify="right")
    out.add_column("failed seeds")
    total = Tally()
    for name, t in tallies.items():
        seeds = ", ".join(map(str, t.failed_seeds[:8]))
        out.add_row(name, *_cells(t), seeds)
        for attr in ("iterations", "runs", "faults", "lost", "duplicates", "violations"):
            setattr(total, attr, getattr(total, attr) + getattr(t, attr))
    out.add_section()
    per_minute = total.faults / max(elapsed / 60, 1e-9)
    out.add_row("total", *_cells(total), f"{per_minute:.1f} faults/min", style="bold")
    return out


def _cells(t: Tally) -> list[str]:
    values = (t.iterations, t.runs, t.faults, t.lost, t.duplicates, t.violations)
    return [str(v) for v in values]


def parse(argv: list[str]) -> argparse.Namespace:
    every = [*CELERY_SCENARIOS, *LOCAL_SCENARIOS]
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, required=True, help="how long (0: one round)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--scenarios", default=",".join(every), help="comma-separated names")
    parser.add_argument("--scale", type=float, default=3.0, help="size of each iteration")
    args = parser.parse_args(argv)
    args.names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = sorted(set(args.names) - set(every))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(every)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    os.environ["PYWORKFLOW_CHAOS_SCALE"] = str(args.scale)
    base = Path(tempfile.mkdtemp(prefix="pyworkflow-soak-"))
    # This process's own pyworkflow logs (e.g. its storage retrying during a database
    # restart) go to a file, not between the progress lines.
    logger.remove()
    logger.add(base / "soak.log", level="INFO")
    asyncpg_log = logging.getLogger("asyncpg")
    asyncpg_log.addHandler(logging.FileHandler(base / "soak.log"))
    asyncpg_log.propagate = False
    console.print(
        f"chaos soak: {args.minutes:g} min, seed {args.seed}, scale {args.scale:g}, "
        f"scenarios {', '.join(args.names)}"
    )
    began = time.monotonic()
    tallies = asyncio.run(soak(args.minutes, args.seed, list(args.names), base))
    console.print(table(tallies, time.monotonic() - began))
    bad = sum(t.lost + t.duplicates + t.violations for t in tallies.values())
    if bad:
        console.print(f"logs and failed local scenarios' directories are kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
