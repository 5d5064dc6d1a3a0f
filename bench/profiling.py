"""What dominates our per-step cost.

Two views of W1 (ours):

* a breakdown, repeated and interleaved like the workloads: the same runs on SQLite
  with our durable ``synchronous=FULL``, with ``NORMAL`` (no fsync per commit) and
  in memory (the engine alone), next to bare commits of the same rows: in-thread
  ``sqlite3`` (our table, and the floor's), through aiosqlite as our backend does,
  and in one hop to a thread;
* a cProfile of the timed runs on durable SQLite, grouped by where the time goes. The
  profile sees the event loop's thread only: SQLite itself runs in aiosqlite's worker
  thread, so the loop waiting for it shows as time in ``epoll.poll``.
"""

from __future__ import annotations

import pstats
import re
from typing import Any

from bench.stats import summary
from bench.suites import Context, rotate

#: (label, function-name or file-path fragment) in priority order; first match wins.
GROUPS = [
    ("waiting for SQLite's thread (SQL + fsync)", "select.epoll"),
    ("pyworkflow engine", "/pyworkflow/engine/"),
    ("pyworkflow storage layer", "/pyworkflow/storage/"),
    ("pyworkflow runtime", "/pyworkflow/runtime/"),
    ("pyworkflow context/steps/core/serialization", "/pyworkflow/"),
    ("event loop + hand-offs to aiosqlite's thread", "/aiosqlite/"),
    ("event loop + hand-offs to aiosqlite's thread", "/asyncio/"),
    ("event loop + hand-offs to aiosqlite's thread", "/selectors.py"),
    ("event loop + hand-offs to aiosqlite's thread", "SimpleQueue"),
    ("event loop + hand-offs to aiosqlite's thread", "_socket.socket"),
    ("event loop + hand-offs to aiosqlite's thread", "_asyncio."),
    ("event loop + hand-offs to aiosqlite's thread", "_contextvars"),
    ("json", "/json/"),
    ("ids, hashes, timestamps", "uuid"),
    ("ids, hashes, timestamps", "urandom"),
    ("ids, hashes, timestamps", "_hashlib"),
    ("ids, hashes, timestamps", "datetime"),
    ("ids, hashes, timestamps", "built-in method now"),
    ("other (builtins, contextlib, inspect, the workload itself)", ""),
]


def _group(key: tuple[str, int, str]) -> str:
    filename, _, func = key
    where = f"{filename}:{func}"
    return next(label for label, frag in GROUPS if frag in where)


def analyse(path: str, steps: int, top: int = 12) -> dict[str, Any]:
    """Self time per group, the top functions by self and by cumulative time, and how
    many times per step the loop handed work to aiosqlite's thread."""
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values()) or 1.0
    groups: dict[str, float] = {}
    for key, value in stats.items():
        groups[_group(key)] = groups.get(_group(key), 0.0) + value[2]

    def name(key: tuple[str, int, str]) -> str:
        filename, line, func = key
        short = re.split(r"site-packages/|/lib/python3\.\d+/|/(?=pyworkflow/|bench/)", filename)
        return func if filename == "~" else f"{short[-1]}:{line}({func})"

    by_self = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    ours = [kv for kv in stats.items() if "/pyworkflow/" in kv[0][0]]
    by_cum = sorted(ours, key=lambda kv: kv[1][3], reverse=True)[:top]
    handoffs = sum(v[1] for k, v in stats.items() if "SimpleQueue" in k[2] and "put" in k[2])
    return {
        "total_s": total,
        "sqlite_thread_calls_per_step": handoffs / steps,
        "groups": sorted(
            ({"group": g, "share": t / total} for g, t in groups.items()),
            key=lambda item: -item["share"],
        ),
        "top_self": [
            {"function": name(k), "share": v[2] / total, "calls": v[1]} for k, v in by_self
        ],
        "top_cumulative": [{"function": name(k), "share": v[3] / total} for k, v in by_cum],
    }


def _variants(ctx: Context) -> list[tuple[str, str, list[str]]]:
    """(label, script, arguments) of the breakdown; a fresh file per call."""
    ours = [
        ("ours, SQLite synchronous=FULL (our default)", ""),
        ("ours, SQLite synchronous=NORMAL (no fsync per commit)", "?synchronous=NORMAL"),
        ("ours, in memory (the engine alone)", None),
    ]
    floors = [
        ("bare sqlite3 commit, minimal table (the floor)", "minimal", "sqlite3"),
        ("bare sqlite3 commit, our events table and rows", "ours", "sqlite3"),
        ("same, through aiosqlite: 3 awaits per commit, as ours", "ours", "aiosqlite"),
        ("same, one hop to a thread per commit", "ours", "thread"),
    ]
    out = []
    for label, option in ours:
        store = "memory:" if option is None else ctx.fresh_file("prof") + option
        out.append((label, "w1.py", ["--engine", "ours", "--store", store]))
    for label, schema, via in floors:
        args = ["--store", ctx.fresh_file("prof-floor"), "--schema", schema, "--via", via]
        out.append((label, "floor_sqlite.py", args))
    return out


def run(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    size = ["--runs", str(plan.w1_runs), "--steps", str(plan.w1_steps)]
    breakdown: dict[str, list[float]] = {}
    for rep in range(plan.profile_reps):
        for label, script, args in rotate(_variants(ctx), rep):
            result = ctx.attempt(f"profile {label}", ctx.ours_python, script, [*args, *size], 600)
            if result is not None:
                breakdown.setdefault(label, []).append(result["ms_per_step"])
    path = str(ctx.workdir / "w1.prof")
    args = ["--engine", "ours", "--store", ctx.fresh_file("prof"), *size, "--profile", path]
    profiled = ctx.attempt("profile cProfile", ctx.ours_python, "w1.py", args, 600)
    return {
        "breakdown_ms_per_step": {label: summary(v) for label, v in breakdown.items()},
        "profiled_ms_per_step": profiled["ms_per_step"] if profiled else None,
        "profile": analyse(path, plan.w1_runs * plan.w1_steps) if profiled else None,
    }
