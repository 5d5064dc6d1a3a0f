"""W1 (SQLite) and W2 (PostgreSQL): runs of a 10-step workflow, one after another.

Each repetition runs the floor script and every engine once, in a rotating order,
each on a fresh SQLite file or a fresh PostgreSQL database.
"""

from __future__ import annotations

from typing import Any

from bench.stats import ratios, summary
from bench.suites import Context, Engine, Row, metric_rows, rotate

FLOOR = "floor"
STORAGE = {
    "W1": "SQLite files (ours: WAL, synchronous=FULL; upstream: its defaults)",
    "W2": "PostgreSQL, fsync and synchronous_commit on",
}


def _store(ctx: Context, workload: str, label: str, rep: int) -> str:
    if workload == "W1":
        return ctx.fresh_file(f"w1-{label}")
    name = f"bench_w2_{label.replace('-', '_').replace('.', '_')}_{rep}"
    ctx.postgres.drop_database(name)
    return str(ctx.postgres.create_database(name))


def _one(ctx: Context, workload: str, who: Engine | None, rep: int) -> dict[str, Any] | None:
    plan = ctx.plan
    size = ["--runs", str(plan.w1_runs), "--steps", str(plan.w1_steps)]
    label = who.name if who else FLOOR
    store = _store(ctx, workload, label, rep)
    if who is None:
        script = "floor_sqlite.py" if workload == "W1" else "floor_pg.py"
        return ctx.attempt(
            f"{workload} floor", ctx.ours_python, script, ["--store", store, *size], 600
        )
    args = ["--engine", who.kind, "--store", store, *size]
    return ctx.attempt(f"{workload} {who.name}", who.python, "w1.py", args, 900)


def run(ctx: Context, workload: str) -> dict[str, Any]:
    """Measure W1 (``workload="W1"``) or W2 (``"W2"``, needs ``ctx.postgres``)."""
    engines: list[Engine | None] = [None, *ctx.engines]
    samples: dict[str, list[dict[str, Any]]] = {(e.name if e else FLOOR): [] for e in engines}
    for rep in range(ctx.plan.reps):
        for who in rotate(engines, rep):
            result = _one(ctx, workload, who, rep)
            if result is not None:
                samples[who.name if who else FLOOR].append(result)
    return {
        "runs": ctx.plan.w1_runs,
        "steps": ctx.plan.w1_steps,
        "storage": STORAGE[workload],
        "samples": samples,
    }


def rows(workload: str, result: dict[str, Any]) -> list[Row]:
    samples = result["samples"]
    engines = {k: v for k, v in samples.items() if k != FLOOR and v}
    case = f"{result['runs']} runs x {result['steps']} steps"
    out = metric_rows(
        workload, case, engines, "runs_per_s", "", higher_is_better=True, label="runs/s"
    )
    out += metric_rows(
        workload, case, engines, "ms_per_step", "ms", higher_is_better=False, label="per step"
    )
    floor = [s["ms_per_step"] for s in samples.get(FLOOR, [])]
    ours = [s["ms_per_step"] for s in samples.get("ours", [])]
    if floor:
        # How far above the floor ours is: ours' ms per step / one bare commit.
        above = summary(ratios(ours, floor)) if ours else None
        out.append(
            Row(workload, case, "floor", "per step", "ms", summary(floor), above, "ours/floor")
        )
    return out
