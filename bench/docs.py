"""Write one run's numbers into ``docs/benchmarks.md``, between two markers.

The method and the discussion around them are written by hand; everything between
the markers comes from the run, so the doc's numbers are those of ``make bench``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import envs, report
from bench.suites import Row, w4, w5

DOC = envs.ROOT / "docs" / "benchmarks.md"
IMG = envs.ROOT / "docs" / "img"
START = "<!-- bench:results:start — written by `make bench`; edits here are overwritten -->"
END = "<!-- bench:results:end -->"


def _machine(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    load = lambda key: " / ".join(f"{x:.1f}" for x in m[key])  # noqa: E731
    return (
        f"Run of {time.strftime('%Y-%m-%d %H:%M', time.strptime(meta['started'], '%Y%m%d-%H%M%S'))}"
        f" (`{meta['mode']}`, {meta['seconds'] / 60:.1f} min, {meta['plan']['reps']} repetitions)"
        f" on {m['cpus']} x {m['cpu_model']}, {m['memory']} RAM, Python {m['python']},"
        f" SQLite {m['sqlite']}, {m['platform']}. Load average (1/5/15 min) at start"
        f" {load('loadavg_at_start')}, at end {load('loadavg_at_end')}."
    )


def _profile(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    out = ["### Profile of W1 (ours)", "", "W1's 2,000 steps, and bare commits of as many:", ""]
    body = [
        [label, report.number(v["median"]), f"{report.number(v['min'])}-{report.number(v['max'])}"]
        for label, v in profile["breakdown_ms_per_step"].items()
    ]
    out += [report.markdown_table(["what", "ms per step", "range"], body), ""]
    prof = profile.get("profile")
    if prof:
        calls = report.number(prof["sqlite_thread_calls_per_step"])
        out += [
            "cProfile of the timed runs on durable SQLite, self time by group "
            f"({calls} calls into aiosqlite's thread per step):",
            "",
        ]
        body = [[g["group"], f"{g['share']:.0%}"] for g in prof["groups"]]
        out += [report.markdown_table(["where", "share"], body), ""]
        out += ["Top functions by self time:", ""]
        body = [
            [f"`{f['function']}`", f"{f['share']:.1%}", str(f["calls"])] for f in prof["top_self"]
        ]
        out += [report.markdown_table(["function", "self", "calls"], body), ""]
        out += ["pyworkflow functions by cumulative time:", ""]
        body = [[f"`{f['function']}`", f"{f['share']:.0%}"] for f in prof["top_cumulative"]]
        out += [report.markdown_table(["function", "cumulative"], body), ""]
    return out


def render(results: dict[str, Any], rows: list[Row], plots: list[Path]) -> str:
    meta = results["meta"]
    out = [START, "", _machine(meta), "", f"Engines: {', '.join(meta['engines'])}.", ""]
    out += [
        "### Targets (this run)",
        "",
        report.markdown_table(report.TARGETS_HEADER, report.targets_table(results["targets"])),
        "",
    ]
    out += ["### Measurements", "", report.markdown_rows(rows), ""]
    notes = []
    if results["workloads"].get("W4"):
        notes.append(w4.note(results["workloads"]["W4"]))
    if "W5" in results["workloads"]:
        notes.append(f"W5 runs per engine: {w5.sizes(results['workloads']['W5'])}.")
    for shape, data in results["workloads"].get("W3", {}).get("shapes", {}).items():
        for skip in data["skipped"]:
            notes.append(f"W3 {shape} K={skip['k']} {skip['engine']}: skipped, {skip['reason']}.")
    notes += [f"Failed: {error}" for error in dict.fromkeys(results["errors"])]
    out += [f"- {note}" for note in notes] + ([""] if notes else [])
    out += [f"![{p.stem}](img/{p.name})" for p in plots] + [""]
    out += _profile(results.get("profile"))
    out.append(END)
    return "\n".join(out)


def update(results: dict[str, Any], rows: list[Row], plots: list[Path]) -> None:
    section = render(results, rows, plots)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
    envs.log(f"wrote {DOC.relative_to(envs.ROOT)}")
