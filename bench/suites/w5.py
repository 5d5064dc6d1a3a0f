"""W5 (local part): runs parked on sleeps in SQLite, then woken from storage.

Per engine: ``park`` (N runs sleeping 1h: size, RSS), then ``prepare`` (N runs with a
1 s sleep, timers held) and ``resume`` in a fresh process (the restarted worker).
Once per benchmark run: each phase is long, and its rate is an average over N runs.
"""

from __future__ import annotations

from typing import Any

from bench.suites import Context, Row, metric_rows


def _engine(ctx: Context, who: Any, runs: int) -> dict[str, Any]:
    n = ["--runs", str(runs)]
    base = ["--engine", who.kind]
    timeout = 60 + runs * 0.1
    out: dict[str, Any] = {"runs": runs}
    park = ctx.fresh_file("w5-park")
    out["park"] = ctx.attempt(
        f"W5 park {who.name}",
        who.python,
        "w5.py",
        [*base, "--store", park, "--phase", "park", *n],
        timeout,
    )
    store = ctx.fresh_file("w5-wake")
    ids = store + ".ids.json"
    common = [*base, "--store", store, *n, "--ids", ids]
    out["prepare"] = ctx.attempt(
        f"W5 prepare {who.name}", who.python, "w5.py", [*common, "--phase", "prepare"], timeout
    )
    if out["prepare"] is not None:
        out["resume"] = ctx.attempt(
            f"W5 resume {who.name}", who.python, "w5.py", [*common, "--phase", "resume"], timeout
        )
    return out


def run(ctx: Context) -> dict[str, Any]:
    per_engine = {}
    for who in ctx.engines:
        runs = ctx.plan.w5_runs if who.kind == "ours" else ctx.plan.w5_upstream_runs
        per_engine[who.name] = _engine(ctx, who, runs)
    return {"engines": per_engine}


def rows(result: dict[str, Any]) -> list[Row]:
    park: dict[str, list[dict[str, Any]]] = {}
    wake: dict[str, list[dict[str, Any]]] = {}
    for name, data in result["engines"].items():
        if data.get("park"):
            park[name] = [data["park"]]
        if data.get("resume"):
            wake[name] = [data["resume"]]
    out: list[Row] = []
    for metric, unit, better, compare, label in [
        ("bytes_per_run", "B", False, True, "storage per run"),
        ("rss_before_mb", "MiB", False, False, "RSS before"),
        ("rss_idle_mb", "MiB", False, False, "RSS while they sleep"),
        ("rss_growth_kb_per_run", "KiB", False, False, "RSS growth per run"),
        ("starts_per_s", "", True, True, "starts/s"),
    ]:
        out += metric_rows(
            "W5",
            "parked on sleep(1h)",
            park,
            metric,
            unit,
            higher_is_better=better,
            compare=compare,
            label=label,
        )
    out += metric_rows(
        "W5",
        "woken from storage",
        wake,
        "resumes_per_s",
        "",
        higher_is_better=True,
        label="resumes/s",
    )
    return out


def sizes(result: dict[str, Any]) -> str:
    """How many runs each engine parked, for the table's footnote."""
    return ", ".join(f"{name} {data['runs']}" for name, data in result["engines"].items())
