"""W4's floor client: RUNS chains of STEPS trivial Celery tasks sent at once to the
workers of ``floor_celery_app``, measured like the engines' runs.

Each chain's submit time is taken right before it is sent; its completion time is
the one its last task returns (the worker's clock: same machine). Reports every
latency, and runs/s = RUNS / (last completion - first submit).
"""

from __future__ import annotations

import argparse
import os
import time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--broker", required=True)
p.add_argument("--backend", required=True)
p.add_argument("--runs", type=int, default=100)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=4)
p.add_argument("--timeout", type=float, default=120)
ARGS = p.parse_args()
# The app reads its broker when imported.
os.environ["BENCH_CELERY_BROKER"], os.environ["BENCH_CELERY_BACKEND"] = ARGS.broker, ARGS.backend

from celery import chain  # noqa: E402
from floor_celery_app import add_one, finish  # noqa: E402
from wl_common import emit  # noqa: E402


def send(base: int) -> tuple[float, object]:
    links = [add_one.s(base * 1000)] + [add_one.s() for _ in range(ARGS.steps - 2)] + [finish.s()]
    submitted = time.time()
    return submitted, chain(*links).apply_async()


def finish_all(sent: list[tuple[float, object]]) -> list[tuple[float, float]]:
    """(submitted, completed) per chain, each checked for its value."""
    out = []
    deadline = time.monotonic() + ARGS.timeout
    for base, (submitted, result) in enumerate(sent):
        value, completed = result.get(timeout=max(1.0, deadline - time.monotonic()))  # type: ignore[attr-defined]
        if value != base * 1000 + ARGS.steps:
            raise AssertionError(f"chain {base} returned {value!r}")
        out.append((submitted, completed))
    return out


def main() -> None:
    if ARGS.steps < 2:
        raise SystemExit("--steps must be at least 2")
    # Untimed: connections, the workers' first tasks.
    finish_all([send(i) for i in range(ARGS.warmup)])
    began = time.perf_counter()
    sent = [send(i) for i in range(ARGS.runs)]
    submit_s = time.perf_counter() - began
    times = finish_all(sent)
    first = min(s for s, _ in times)
    span = max(c for _, c in times) - first
    emit(
        {
            "engine": "floor",
            "runs": ARGS.runs,
            "steps": ARGS.steps,
            "submit_s": submit_s,
            "span_s": span,
            "runs_per_s": ARGS.runs / span,
            "latencies_ms": [(c - s) * 1000 for s, c in times],
        }
    )


main()
