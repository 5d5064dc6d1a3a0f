"""Command line of the harness: pick the plan, make the venvs, run the suites, report."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import envs, report, targets
from bench.plan import PLANS, Plan
from bench.suites import Context, Engine, Row, w1, w3, w4, w5

RESULTS = envs.ROOT / "bench" / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes, 0.1.10 only (~3 min)")
    mode.add_argument("--smoke", action="store_true", help="tiny: ours only, W1, W3, W4 (~20 s)")
    p.add_argument("--only", help="comma-separated workloads, e.g. W1,W3 (W4: Celery)")
    p.add_argument("--reps", type=int, help="repetitions (default: 3 full, 2 quick)")
    p.add_argument("--w3-budget", type=float, help="skip W3 runs predicted to take longer (s)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    p.add_argument("--no-docs", action="store_true", help="leave docs/ untouched")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.only:
        plan = plan.only([w.strip().upper() for w in args.only.split(",") if w.strip()])
    if args.reps:
        plan = replace(plan, reps=args.reps)
    if args.w3_budget:
        plan = replace(plan, w3_budget_s=args.w3_budget)
    if args.no_docs:
        plan = replace(plan, docs=False)
    return plan


def engines(plan: Plan, errors: list[str]) -> list[Engine]:
    found = [Engine("ours", envs.OURS, "ours")]
    versions = [envs.newest_upstream() if v == "newest" else v for v in plan.upstream]
    for version in dict.fromkeys(versions):
        try:
            found.append(Engine(f"upstream-{version}", envs.upstream_python(version), "upstream"))
        except (OSError, RuntimeError) as exc:
            errors.append(f"upstream {version} not installed: {exc}")
    return found


def run_suites(ctx: Context) -> dict[str, Any]:
    done: dict[str, Any] = {}
    for workload in ctx.plan.workloads:
        envs.log(f"{workload} ...")
        if workload == "W1":
            done["W1"] = w1.run(ctx, "W1")
        elif workload == "W2":
            done["W2"] = _w2(ctx)
        elif workload == "W3":
            done["W3"] = w3.run(ctx)
        elif workload == "W4":
            done["W4"] = w4.run(ctx)
        elif workload == "W5":
            done["W5"] = w5.run(ctx)
    return done


def _w2(ctx: Context) -> dict[str, Any]:
    from bench.pg import durable_postgres
    from tests.servers import ServerBinaryMissing, ServerStartError

    try:
        with durable_postgres() as server:
            ctx.postgres = server
            return w1.run(ctx, "W2")
    except (ServerBinaryMissing, ServerStartError) as exc:
        ctx.errors.append(f"W2 postgres: {exc}")
        return {}


def table_rows(workloads: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name in ("W1", "W2"):
        if workloads.get(name):
            rows += w1.rows(name, workloads[name])
    if "W3" in workloads:
        rows += w3.rows(workloads["W3"])
    if workloads.get("W4"):
        rows += w4.rows(workloads["W4"])
    if "W5" in workloads:
        rows += w5.rows(workloads["W5"])
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan = make_plan(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    began = time.monotonic()
    meta: dict[str, Any] = {"mode": plan.mode, "plan": plan.__dict__, "started": stamp}
    meta["machine"] = envs.machine()
    errors: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="pyworkflow-bench-"))
    try:
        ctx = Context(plan, engines(plan, errors), workdir, envs.OURS, errors=errors)
        meta["engines"] = [e.name for e in ctx.engines]
        workloads = run_suites(ctx)
        extra: dict[str, Any] = {}
        if plan.profile and "W1" in plan.workloads:
            from bench import profiling

            envs.log("profile of W1 ...")
            extra["profile"] = profiling.run(ctx)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta["seconds"] = time.monotonic() - began
    meta["machine"]["loadavg_at_end"] = os.getloadavg()
    results = {"meta": meta, "workloads": workloads, **extra, "errors": errors}
    results["targets"] = targets.evaluate(results)
    rows = table_rows(workloads)
    path = report.write_json(results, args.out, stamp)
    print(report.rows_text(rows))
    print()
    print(report.text_table(report.TARGETS_HEADER, report.targets_table(results["targets"])))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    publish(plan, results, rows, path)
    print(f"\nresults: {path}  ({meta['seconds']:.0f} s)")
    return 1 if any(_ours(error) for error in errors) else 0


def _ours(error: str) -> bool:
    """Whether a failure is ours (or the floor's): upstream's are reported, not fatal."""
    label = error.split(":", 1)[0]
    return label.startswith("profile") or label.split()[-1] in ("ours", "floor")


def publish(plan: Plan, results: dict[str, Any], rows: list[Row], path: Path) -> None:
    """Plots and the results section of docs/benchmarks.md (full runs only)."""
    if not plan.plots:
        return
    from bench import docs, plots

    made = plots.make(path, docs.IMG if plan.docs else path.with_suffix(""))
    if plan.docs:
        docs.update(results, rows, made)
