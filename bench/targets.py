"""The issue's targets, checked against one benchmark run's numbers."""

from __future__ import annotations

from typing import Any

from bench.report import number
from bench.stats import pick, ratios, summary
from bench.suites import w3, w4

REFERENCE = "upstream-0.1.10"


def _w1(results: dict[str, Any]) -> list[dict[str, Any]]:
    samples = results["workloads"].get("W1", {}).get("samples", {})
    if not samples:
        return []  # W1 not run (--only)
    ours, ref = samples.get("ours", []), samples.get(REFERENCE, [])
    out = []
    ratio = summary(ratios(pick(ours, "runs_per_s"), pick(ref, "runs_per_s")))
    out.append(
        _check("W1: ≥ 5x the runs/s of upstream 0.1.10", ratio["median"], 5.0, "x", higher=True)
    )
    step = summary(pick(ours, "ms_per_step"))["median"]
    out.append(_check("W1: ≤ ~1 ms per durable step", step, 1.0, " ms", higher=False))
    return out


def _w3(results: dict[str, Any]) -> list[dict[str, Any]]:
    data = results["workloads"].get("W3")
    if not data:
        return []
    out = []
    grow = w3.growth(data, "loop", "per_iteration_ms")
    name = "W3: loop per-iteration cost at K=3200 ≤ 2x K=50"
    if grow:
        note = "" if grow["to_k"] == 3200 else f"K={grow['to_k']} is the largest K measured"
        skipped = [s for s in data["shapes"]["loop"]["skipped"] if s["engine"] == "ours"]
        if skipped:
            note += f"; K={skipped[0]['k']} skipped: {skipped[0]['reason']}"
        met = grow["ratio"] <= 2.0 if grow["to_k"] == 3200 or grow["ratio"] > 2.0 else None
        out.append(
            {
                "target": name,
                "met": met,
                "note": note.strip("; "),
                "measured": f"{number(grow['ratio'])}x (K={grow['from_k']}→{grow['to_k']})",
            }
        )
    resume = data["shapes"]["seq"]["per_k"].get("800", {}).get("ours", [])
    value = summary(pick(resume, "first_resume_ms"))["median"]
    out.append(_check("W3: one resume after 800 steps ≤ 20 ms", value, 20.0, " ms", higher=False))
    return out


def _w5(results: dict[str, Any]) -> list[dict[str, Any]]:
    data = results["workloads"].get("W5", {}).get("engines", {}).get("ours")
    if not data:
        return []
    out = []
    rate = (data.get("resume") or {}).get("resumes_per_s")
    out.append(_check("W5: ≥ 500 resumes/s from storage", rate, 500.0, "/s", higher=True))
    park = data.get("park") or {}
    if park:
        growth = park["rss_idle_mb"] - park["rss_before_mb"]
        # "Flat": the runs cost no memory of their own; what remains is SQLite's page
        # cache (2 MiB per connection by default) and allocator noise.
        out.append(
            {
                "target": f"W5: memory flat while {data['runs']} runs sleep",
                "measured": f"{number(park['rss_before_mb'])} → {number(park['rss_idle_mb'])} MiB "
                f"({number(park['rss_growth_kb_per_run'])} KiB/run)",
                "met": growth <= 8.0,
                "note": "flat = under 8 MiB of growth (SQLite's page caches)",
            }
        )
    return out


def _w4(results: dict[str, Any]) -> list[dict[str, Any]]:
    data = results["workloads"].get("W4")
    if not data:
        return []
    samples = data["samples"]
    out = []
    for config, workers in w4.CONFIGS.items():
        ours = [s[config] for s in samples.get("ours", [])]
        floor = [s[config] for s in samples.get(w4.FLOOR, [])]
        share = summary(ratios(pick(ours, "runs_per_s"), pick(floor, "runs_per_s")))["median"]
        name = f"W4: ≥ 50 % of raw Celery chain throughput ({w4.workers_text(workers)})"
        out.append(_check(name, share * 100, 50.0, " %", higher=True))
    late = summary(pick([s["sleep"] for s in samples.get("ours", [])], "late_p95_ms"))["median"]
    check = _check("W4: sleep lateness p95 ≤ 1 s", late, 1000.0, " ms", higher=False)
    tick = f"Beat tick every {data['tick_s']:g} s"
    check["note"] = f"{check['note']}; {tick}" if check.get("note") else tick
    return [*out, check]


def _check(target: str, value: Any, bound: float, unit: str, *, higher: bool) -> dict[str, Any]:
    if value is None or value != value:  # missing or NaN
        return {"target": target, "measured": "-", "met": None}
    met = value >= bound if higher else value <= bound
    miss = (
        ""
        if met
        else (f"{number(bound / value)}x short" if higher else f"{number(value / bound)}x over")
    )
    return {"target": target, "measured": f"{number(value)}{unit}", "met": met, "note": miss}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    return _w1(results) + _w3(results) + _w4(results) + _w5(results)
