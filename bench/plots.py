"""One PNG per workload, drawn with matplotlib in ``bench/.venvs/tools``.

``make(results_json, out_dir)`` runs this file as a script with the tools venv's
python (matplotlib is no dependency of the project); the drawing code below uses
the results file only, so it needs nothing from this repository.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

COLORS = {"ours": "#1f77b4", "floor": "#7f7f7f"}
PALETTE = ["#ff7f0e", "#d62728", "#9467bd", "#8c564b"]


def make(results: Path, out_dir: Path) -> list[Path]:
    """Draw the plots of ``results`` into ``out_dir``; returns the files written."""
    from bench import envs

    python = envs.tools_python()
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(python), __file__, str(results), str(out_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        envs.log(f"plots failed: {done.stderr[-1500:]}")
        return []
    return [Path(line) for line in done.stdout.split()]


def color(name: str) -> str:
    """Ours blue, the floor grey, each upstream release its own colour in every plot."""
    if name not in COLORS:
        COLORS[name] = PALETTE[(len(COLORS) - 2) % len(PALETTE)]
    return COLORS[name]


def bars(ax: Any, samples: dict[str, list[dict[str, Any]]], metric: str, title: str) -> None:
    names = [n for n, s in samples.items() if s]
    meds = [statistics.median(s[metric] for s in samples[n]) for n in names]
    low = [m - min(s[metric] for s in samples[n]) for m, n in zip(meds, names, strict=True)]
    high = [max(s[metric] for s in samples[n]) - m for m, n in zip(meds, names, strict=True)]
    ax.bar(names, meds, yerr=[low, high], capsize=4, color=[color(n) for n in names])
    for x, m in enumerate(meds):
        ax.annotate(
            f"{m:,.0f}" if m >= 100 else f"{m:.3g}",
            (x, m),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=8, rotation=15)


def plot_w12(plt: Any, name: str, data: dict[str, Any], out: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    engines = {k: v for k, v in data["samples"].items() if k != "floor"}
    bars(left, engines, "runs_per_s", f"{name}: runs/s ({data['runs']} x {data['steps']} steps)")
    bars(right, data["samples"], "ms_per_step", f"{name}: ms per durable step (floor: bare commit)")
    fig.suptitle(f"{name} — {data['storage']}; bars: median, whiskers: min-max", fontsize=10)
    return save(fig, out / f"{name.lower()}.png")


def plot_w3(plt: Any, data: dict[str, Any], out: Path) -> Path:
    panels = [
        ("seq", "first_resume_ms", "seq: one resume replaying K steps (ms)"),
        ("seq", "per_iteration_ms", "seq: ms per live step"),
        ("loop", "total_s", "loop: total time (s)"),
        ("loop", "per_iteration_ms", "loop: ms per iteration"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, (shape, metric, title) in zip(axes, panels, strict=True):
        per_k = data["shapes"][shape]["per_k"]
        names = sorted(
            {n for runs in per_k.values() for n, s in runs.items() if s},
            key=lambda n: (n != "ours", n),
        )
        for name in names:
            points = [
                (int(k), statistics.median(s[metric] for s in runs[name]))
                for k, runs in per_k.items()
                if runs.get(name)
            ]
            ax.plot(*zip(*points, strict=True), marker="o", label=name, color=color(name))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(data["ks"], [str(k) for k in data["ks"]])
        ax.minorticks_off()
        ax.set_xlabel("K")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("W3 — growth with history (SQLite), medians; log-log", fontsize=10)
    return save(fig, out / "w3.png")


def plot_w5(plt: Any, data: dict[str, Any], out: Path) -> Path:
    engines = data["engines"]
    park = {n: [d["park"]] for n, d in engines.items() if d.get("park")}
    wake = {n: [d["resume"]] for n, d in engines.items() if d.get("resume")}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    bars(axes[0], wake, "resumes_per_s", "resumes/s from storage")
    bars(axes[1], park, "bytes_per_run", "storage bytes per sleeping run")
    names = list(park)
    before = [park[n][0]["rss_before_mb"] for n in names]
    idle = [park[n][0]["rss_idle_mb"] for n in names]
    x = range(len(names))
    axes[2].bar([i - 0.2 for i in x], before, 0.4, label="before starting them", color="#aec7e8")
    axes[2].bar([i + 0.2 for i in x], idle, 0.4, label="while they sleep", color="#1f77b4")
    axes[2].set_xticks(list(x), [f"{n}\n({engines[n]['runs']} runs)" for n in names], fontsize=8)
    axes[2].set_title("process RSS (MiB)", fontsize=10)
    axes[2].legend(fontsize=8)
    sizes = ", ".join(f"{n}: {d['runs']}" for n, d in engines.items())
    fig.suptitle(f"W5 — runs parked on sleeps, SQLite (runs per engine: {sizes})", fontsize=10)
    return save(fig, out / "w5.png")


def grouped(ax: Any, names: list[str], groups: dict[str, list[list[float]]], title: str) -> None:
    """Bars per side (x) and group (one colour each): the median, whiskers min-max.

    ``groups`` maps a group's legend label to one list of values per name."""
    width = 0.8 / max(1, len(groups))
    shades = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78"]
    for g, (label, per_name) in enumerate(groups.items()):
        xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(names))]
        meds = [statistics.median(v) if v else 0.0 for v in per_name]
        low = [m - min(v) if v else 0.0 for m, v in zip(meds, per_name, strict=True)]
        high = [max(v) - m if v else 0.0 for m, v in zip(meds, per_name, strict=True)]
        ax.bar(xs, meds, width, yerr=[low, high], capsize=3, label=label, color=shades[g % 4])
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(list(range(len(names))), names, fontsize=8, rotation=15)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


def plot_w4(plt: Any, data: dict[str, Any], out: Path) -> Path:
    samples = {n: s for n, s in data["samples"].items() if s}
    names = list(samples)
    configs = {"one": "1 worker", "two": "2 workers"}

    def values(config: str, metric: str, among: list[str]) -> list[list[float]]:
        return [[s[config][metric] for s in samples[n] if config in s] for n in among]

    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    panels = [("runs_per_s", "runs/s"), ("p50_ms", "latency p50 (ms)"), ("p95_ms", "p95 (ms)")]
    for ax, (metric, title) in zip(axes, panels, strict=False):
        groups = {label: values(c, metric, names) for c, label in configs.items()}
        grouped(ax, names, groups, f"{data['runs']} runs x {data['steps']} steps: {title}")
    sleepers = [n for n in names if "sleep" in samples[n][0]]
    late = {
        label: values("sleep", metric, sleepers)
        for metric, label in [
            ("late_p50_ms", "p50"),
            ("late_p95_ms", "p95"),
            ("late_max_ms", "max"),
        ]
    }
    title = f"{data['sleepers']} x sleep({data['sleep']}): lateness (ms; < 0: early)"
    grouped(axes[3], sleepers, late, title)
    fig.suptitle(
        f"W4 — Celery, same Redis; step workers (floor: workers) of one process; "
        f"Beat tick {data['tick_s']:g} s; bars: median, whiskers: min-max",
        fontsize=10,
    )
    return save(fig, out / "w4.png")


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def main(results_path: str, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(Path(results_path).read_text())
    for name in sorted(results["meta"]["engines"]):
        color(name)
    workloads, out = results["workloads"], Path(out_dir)
    made = [plot_w12(plt, n, workloads[n], out) for n in ("W1", "W2") if n in workloads]
    if "W3" in workloads:
        made.append(plot_w3(plt, workloads["W3"], out))
    if workloads.get("W4"):
        made.append(plot_w4(plt, workloads["W4"], out))
    if "W5" in workloads:
        made.append(plot_w5(plt, workloads["W5"], out))
    print("\n".join(str(p) for p in made))


if __name__ == "__main__":
    main(*sys.argv[1:3])
