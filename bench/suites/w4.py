"""W4: the Celery runtime on real processes, against raw Celery chains (the floor).

Per repetition, in a rotating order, each side gets its own Celery processes on a
fresh Redis database and a fresh storage:

* ours (SQLite, and PostgreSQL when the plan has it) and each upstream release: one
  workflow worker (``pyworkflow.workflows`` and ``pyworkflow.schedules``) and one step
  worker; a throughput phase; a second step worker; the throughput phase again; then
  the sleep phase. Ours also runs Beat, which fires its timers; upstream's sleeps are
  Celery countdowns and need none.
* the floor: one worker of a plain Celery app, the chain phase, a second worker, the
  chain phase again.

An upstream release that fails a phase is reported as failed and not tried again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.celery_cluster import Cluster, ClusterFailed, base_env, redis_server
from bench.envs import log
from bench.stats import percentile
from bench.suites import Context, Row, metric_rows, rotate

FLOOR = "floor"
APP = "pyworkflow.celery.app"
SCHEDULER = "pyworkflow.celery.scheduler:PyWorkflowScheduler"
WORKFLOW_QUEUES = ["pyworkflow.workflows", "pyworkflow.schedules"]
STEP_QUEUES = ["pyworkflow.steps"]
#: The throughput phases: how many step workers (the floor: workers) each one has.
CONFIGS = {"one": 1, "two": 2}


@dataclass(frozen=True)
class Side:
    """Who runs W4. ``label`` names its failures (``bench.cli`` treats a label ending
    in "ours" or "floor" as the harness' own failure, an upstream's as a finding)."""

    name: str
    python: Path
    kind: str  # "floor", "ours" or "upstream"
    postgres: bool = False

    def label(self, phase: str) -> str:
        return f"W4 {phase} postgres ours" if self.postgres else f"W4 {phase} {self.name}"


def _sides(ctx: Context, postgres: Any) -> list[Side]:
    sides = [Side(FLOOR, ctx.ours_python, "floor"), Side("ours", ctx.ours_python, "ours")]
    if postgres is not None:
        sides.append(Side("ours-postgres", ctx.ours_python, "ours", postgres=True))
    return sides + [Side(e.name, e.python, "upstream") for e in ctx.upstreams]


def run(ctx: Context) -> dict[str, Any]:
    from tests.servers import ServerBinaryMissing, ServerStartError

    plan = ctx.plan
    out: dict[str, Any] = {
        "runs": plan.w4_runs,
        "steps": plan.w4_steps,
        "sleepers": plan.w4_sleepers,
        "sleep": plan.w4_sleep,
        "tick_s": plan.w4_tick_s,
        "failed": {},
    }
    with contextlib.ExitStack() as stack:
        try:
            redis = stack.enter_context(redis_server())
        except (ServerBinaryMissing, ServerStartError) as exc:
            ctx.errors.append(f"W4 ours: Redis: {exc}")
            return {}
        postgres = _postgres(ctx, stack) if plan.postgres else None
        sides = _sides(ctx, postgres)
        samples: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sides}
        for rep in range(plan.reps):
            for side in rotate(sides, rep):
                if side.name in out["failed"]:
                    continue
                sample = _measure(ctx, redis, postgres, side, rep)
                if isinstance(sample, str):
                    out["failed"][side.name] = sample
                else:
                    samples[side.name].append(sample)
    out["samples"] = samples
    return out


def _postgres(ctx: Context, stack: contextlib.ExitStack) -> Any:
    from bench.pg import durable_postgres
    from tests.servers import ServerBinaryMissing, ServerStartError

    try:
        return stack.enter_context(durable_postgres())
    except (ServerBinaryMissing, ServerStartError) as exc:
        ctx.errors.append(f"W4 postgres ours: {exc}")
        return None


def _measure(ctx: Context, redis: Any, postgres: Any, side: Side, rep: int) -> dict[str, Any] | str:
    """One repetition of one side: its phases' results, or why it failed."""
    urls = {"broker": redis.fresh_url(), "backend": redis.fresh_url()}
    before = len(ctx.errors)
    try:
        if side.kind == FLOOR:
            env = base_env(
                {"BENCH_CELERY_BROKER": urls["broker"], "BENCH_CELERY_BACKEND": urls["backend"]}
            )
            with Cluster(side.python, "floor_celery_app", env, side.name) as cluster:
                result = _floor(ctx, cluster, side, urls)
        else:
            store, storage_env = _store(ctx, postgres, side, rep)
            env = base_env({**_engine_env(ctx, urls), **storage_env})
            with Cluster(side.python, APP, env, side.name) as cluster:
                result = _engine(ctx, cluster, side, store, urls)
    except (ClusterFailed, OSError) as exc:
        ctx.errors.append(f"{side.label('start-up')}: {exc}")
        log(f"  FAILED {side.label('start-up')}: {exc}")
        result = None
    if result is None:
        # The table's note: the phase and the first line of the error, shortened.
        error = ctx.errors[before] if len(ctx.errors) > before else "W4 ? ?: no result"
        label, _, message = error.partition(": ")
        return f"{label.split()[1]}: {message.splitlines()[0][:160]}"
    return result


def _engine_env(ctx: Context, urls: dict[str, str]) -> dict[str, str]:
    return {
        "PYWORKFLOW_CELERY_BROKER": urls["broker"],
        "PYWORKFLOW_CELERY_RESULT_BACKEND": urls["backend"],
        "PYWORKFLOW_DISCOVER": "w4_flows",
        "PYWORKFLOW_LOG_LEVEL": "WARNING",
        "PYWORKFLOW_TICK_INTERVAL": str(ctx.plan.w4_tick_s),
    }


def _store(ctx: Context, postgres: Any, side: Side, rep: int) -> tuple[str, dict[str, str]]:
    """The run's storage for the client (a path or DSN) and for the workers (env).

    The workers need it in their environment as well as in each message: ours' tick
    (storage-less, from Beat) finds the timers in the storage the workers are
    configured with."""
    if not side.postgres:
        path = ctx.fresh_file(f"w4-{side.name}")
        return path, {"PYWORKFLOW_STORAGE_TYPE": "sqlite", "PYWORKFLOW_STORAGE_PATH": path}
    name = f"bench_w4_{rep}"
    postgres.drop_database(name)
    dsn = postgres.create_database(name)
    return str(dsn), {
        "PYWORKFLOW_STORAGE_TYPE": "postgres",
        "PYWORKFLOW_POSTGRES_HOST": "127.0.0.1",
        "PYWORKFLOW_POSTGRES_PORT": str(postgres.port),
        "PYWORKFLOW_POSTGRES_USER": "postgres",
        "PYWORKFLOW_POSTGRES_DATABASE": name,
    }


def _client_args(ctx: Context, urls: dict[str, str]) -> list[str]:
    plan = ctx.plan
    return [
        *("--broker", urls["broker"], "--backend", urls["backend"]),
        *("--runs", str(plan.w4_runs), "--steps", str(plan.w4_steps)),
        *("--warmup", str(plan.w4_warmup), "--timeout", str(plan.w4_timeout_s)),
    ]


def _engine(
    ctx: Context, cluster: Cluster, side: Side, store: str, urls: dict[str, str]
) -> dict[str, Any] | None:
    plan = ctx.plan
    if side.kind == "ours":
        cluster.beat(SCHEDULER)
    cluster.worker("workflows", WORKFLOW_QUEUES)
    args = ["--engine", side.kind, "--store", store, *_client_args(ctx, urls)]
    timeout = plan.w4_timeout_s + 60
    out: dict[str, Any] = {}
    for config, workers in CONFIGS.items():
        cluster.worker(f"steps{workers}", STEP_QUEUES)
        phase = [*args, "--phase", "throughput"]
        label = side.label(f"throughput-{workers}")
        result = ctx.attempt(label, side.python, "w4.py", phase, timeout)
        if result is None:
            return None
        out[config] = _latencies(result)
    nap = ["--phase", "sleep", "--sleepers", str(plan.w4_sleepers), "--sleep", plan.w4_sleep]
    result = ctx.attempt(side.label("sleep"), side.python, "w4.py", [*args, *nap], timeout)
    if result is None:
        return None
    out["sleep"] = _lateness(result)
    return out


def _floor(
    ctx: Context, cluster: Cluster, side: Side, urls: dict[str, str]
) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    args = _client_args(ctx, urls)
    for config, workers in CONFIGS.items():
        cluster.worker(f"worker{workers}", ["bench.floor"])
        label = side.label(f"throughput-{workers}")
        timeout = ctx.plan.w4_timeout_s + 60
        result = ctx.attempt(label, side.python, "floor_celery.py", args, timeout)
        if result is None:
            return None
        out[config] = _latencies(result)
    return out


def _latencies(result: dict[str, Any]) -> dict[str, Any]:
    values = result["latencies_ms"]
    return {
        **result,
        "p50_ms": percentile(values, 0.5),
        "p95_ms": percentile(values, 0.95),
        "max_ms": max(values),
    }


def _lateness(result: dict[str, Any]) -> dict[str, Any]:
    values = result["lateness_ms"]
    return {
        **result,
        "late_p50_ms": percentile(values, 0.5),
        "late_p95_ms": percentile(values, 0.95),
        "late_max_ms": max(values),
        "slept_p50_ms": percentile(result["slept_ms"], 0.5),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    samples = result["samples"]
    out: list[Row] = []
    for config, workers in CONFIGS.items():
        per = {name: [s[config] for s in runs] for name, runs in samples.items() if runs}
        case = f"{result['runs']} runs x {result['steps']} steps, {workers_text(workers)}"
        for metric, unit, better, label in [
            ("runs_per_s", "", True, "runs/s"),
            ("p50_ms", "ms", False, "latency p50"),
            ("p95_ms", "ms", False, "latency p95"),
        ]:
            out += metric_rows("W4", case, per, metric, unit, higher_is_better=better, label=label)
    out += _sleep_rows(result)
    for name, reason in result.get("failed", {}).items():
        out.append(Row("W4", "all", name, "failed", "", {}, None, reason))
    return out


def workers_text(count: int) -> str:
    return "1 worker" if count == 1 else f"{count} workers"


def _sleep_rows(result: dict[str, Any]) -> list[Row]:
    per = {
        name: [s["sleep"] for s in runs]
        for name, runs in result["samples"].items()
        if runs and "sleep" in runs[0]
    }
    case = f"{result['sleepers']} x sleep({result['sleep']}), tick {result['tick_s']:g} s"
    out: list[Row] = []
    for metric, label in [
        ("late_p50_ms", "lateness p50"),
        ("late_p95_ms", "lateness p95"),
        ("late_max_ms", "lateness max"),
        ("slept_p50_ms", "slept p50"),
    ]:
        # No ratios: a sleep ended early is not "better" than one ended late.
        out += metric_rows(
            "W4", case, per, metric, "ms", higher_is_better=False, compare=False, label=label
        )
    return out


def note(result: dict[str, Any]) -> str:
    """The footnote of the docs' table."""
    return (
        "W4: every side on its own Celery processes (`--pool solo`, one process per "
        "worker) and Redis databases, the client in one more process; "
        f"ours' timers fired by Beat's tick every {result['tick_s']:g} s, upstream's sleeps "
        "are Celery countdowns (no Beat). Lateness below 0: the sleep ended early."
    )
