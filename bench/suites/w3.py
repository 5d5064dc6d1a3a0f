"""W3: growth with history (SQLite). For each shape and K, every engine runs once per
repetition; an engine whose next K is predicted to exceed the budget stops there."""

from __future__ import annotations

from typing import Any

from bench.plan import Plan
from bench.stats import summary
from bench.suites import Context, Engine, Row, metric_rows, rotate

SHAPES = ("seq", "loop")
METRICS = {
    # shape: [(metric, unit, label in the table)]
    "seq": [("per_iteration_ms", "ms", "per live step"), ("first_resume_ms", "ms", "one resume")],
    "loop": [
        ("total_s", "s", "total"),
        ("per_iteration_ms", "ms", "per iteration"),
        ("first_resume_ms", "ms", "first resume"),
        ("last_resume_ms", "ms", "last resume"),
    ],
}


def _predict(history: dict[int, float], k: int) -> float:
    """Seconds for K, from t = a*K + b*K^2 through the last two points measured (a
    replay of the whole history per resume makes the loop quadratic), or from K^2
    alone after one point."""
    points = sorted(history.items())
    if not points:
        return 0.0
    k1, t1 = points[-1]
    if len(points) < 2:
        return t1 * (k / k1) ** 2
    k0, t0 = points[-2]
    b = max(0.0, (t1 / k1 - t0 / k0) / (k1 - k0))
    a = max(0.0, t1 / k1 - b * k1)
    return a * k + b * k * k


def _skip_reason(plan: Plan, who: Engine, k: int, predicted: float) -> str:
    if who.kind == "upstream" and k > plan.w3_upstream_max_k:
        return f"upstream measured up to K={plan.w3_upstream_max_k}"
    if predicted > plan.w3_budget_s:
        return f"predicted ~{predicted:.0f} s > {plan.w3_budget_s:.0f} s budget"
    return ""


def _shape(ctx: Context, shape: str) -> dict[str, Any]:
    plan = ctx.plan
    per_k: dict[str, dict[str, list[dict[str, Any]]]] = {}
    skipped: list[dict[str, Any]] = []
    # engine -> {K: fastest total seen}, for predicting the next K (the fastest: one
    # slow outlier on a busy machine must not cut the next K's repetitions).
    history: dict[str, dict[int, float]] = {e.name: {} for e in ctx.engines}
    active: list[Engine] = list(ctx.engines)
    for k in plan.w3_ks:
        runs: dict[str, list[dict[str, Any]]] = {e.name: [] for e in active}
        predicted = {e.name: _predict(history[e.name], k) for e in active}
        for who in list(active):
            reason = _skip_reason(plan, who, k, predicted[who.name])
            if reason:
                skipped.append({"engine": who.name, "k": k, "reason": reason})
                active.remove(who)
                runs.pop(who.name)
        for rep in range(plan.reps):
            for who in rotate(active, rep):
                # A long run is measured once: its noise is small next to its length.
                if rep > 0 and predicted[who.name] > plan.w3_budget_s / 4:
                    continue
                store = ctx.fresh_file(f"w3-{shape}-{k}")
                args = ["--engine", who.kind, "--store", store, "--shape", shape, "--k", str(k)]
                timeout = 2 * plan.w3_budget_s + 120
                result = ctx.attempt(
                    f"W3 {shape} K={k} {who.name}", who.python, "w3.py", args, timeout
                )
                if result is not None:
                    runs[who.name].append(result)
                    seen = history[who.name]
                    seen[k] = min(seen.get(k, result["total_s"]), result["total_s"])
        per_k[str(k)] = runs
    return {"per_k": per_k, "skipped": skipped}


def run(ctx: Context) -> dict[str, Any]:
    return {"ks": list(ctx.plan.w3_ks), "shapes": {s: _shape(ctx, s) for s in SHAPES}}


def growth(result: dict[str, Any], shape: str, metric: str, engine: str = "ours") -> dict[str, Any]:
    """``metric`` at the largest K measured over its value at the smallest K."""
    points = [
        (int(k), summary([s[metric] for s in runs.get(engine, [])])["median"])
        for k, runs in result["shapes"][shape]["per_k"].items()
        if runs.get(engine)
    ]
    if len(points) < 2:
        return {}
    (k0, v0), (k1, v1) = points[0], points[-1]
    return {"from_k": k0, "to_k": k1, "ratio": v1 / v0 if v0 else float("nan")}


def rows(result: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for shape, data in result["shapes"].items():
        for k, runs in data["per_k"].items():
            present = {name: samples for name, samples in runs.items() if samples}
            for metric, unit, label in METRICS[shape]:
                out += metric_rows(
                    "W3",
                    f"{shape} K={k}",
                    present,
                    metric,
                    unit,
                    higher_is_better=False,
                    label=label,
                )
        for skip in data["skipped"]:
            out.append(
                Row(
                    "W3",
                    f"{shape} K={skip['k']}",
                    skip["engine"],
                    "skipped",
                    "",
                    {"median": None, "min": None, "max": None, "n": 0},
                    None,
                    skip["reason"],
                )
            )
    return out
