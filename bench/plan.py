"""What each mode measures: sizes, repetitions, which engines, and time budgets."""

from __future__ import annotations

from dataclasses import dataclass, replace

WORKLOADS = ("W1", "W2", "W3", "W4", "W5")


@dataclass(frozen=True)
class Plan:
    """One benchmark run's sizes. ``upstream`` lists the releases to compare against;
    ``"newest"`` is resolved to the newest release on PyPI."""

    mode: str
    reps: int
    workloads: tuple[str, ...] = WORKLOADS
    upstream: tuple[str, ...] = ("0.1.10", "newest")
    w1_runs: int = 200
    w1_steps: int = 10
    w3_ks: tuple[int, ...] = (50, 200, 800, 3200)
    #: A W3 run predicted (from the Ks before it) to take longer is skipped and
    #: reported as such; one predicted over a quarter of it runs once.
    w3_budget_s: float = 120.0
    #: Upstream replays its whole log per resume and grows quadratically: it is
    #: measured up to this K only (0.1.10's seq K=3200 alone takes ~2 minutes).
    w3_upstream_max_k: int = 800
    w5_runs: int = 10_000
    #: Upstream's W5 is slow to set up (a few ms per run); its per-run figures
    #: (bytes, KiB of RSS, resumes/s) are measured on fewer runs.
    w5_upstream_runs: int = 1_000
    #: W4 (Celery): RUNS runs of STEPS steps started at once, with one step worker then
    #: two; then SLEEPERS runs of ``sleep(W4_SLEEP)`` for the timers' lateness.
    w4_runs: int = 100
    w4_steps: int = 5
    w4_warmup: int = 4
    w4_sleepers: int = 20
    w4_sleep: str = "2s"
    #: Beat's tick (``PYWORKFLOW_TICK_INTERVAL``): ours' default.
    w4_tick_s: float = 1.0
    #: A client phase that has not seen every run end by then fails (upstream's runs
    #: are given as long as ours; a failure is reported and that engine not retried).
    w4_timeout_s: float = 120.0
    postgres: bool = True
    profile: bool = True
    #: Repetitions of the profile's breakdown (bare commits and storage variants).
    profile_reps: int = 3
    plots: bool = True
    docs: bool = True

    def only(self, names: list[str]) -> Plan:
        unknown = set(names) - set(WORKLOADS)
        if unknown:
            raise SystemExit(f"unknown workload(s) {sorted(unknown)}; choose from {WORKLOADS}")
        return replace(self, workloads=tuple(w for w in WORKLOADS if w in names))


PLANS = {
    "full": Plan(mode="full", reps=3),
    "quick": Plan(
        mode="quick",
        reps=2,
        upstream=("0.1.10",),
        w3_ks=(50, 200, 800),
        w3_budget_s=30.0,
        w5_runs=1_000,
        w5_upstream_runs=300,
        profile_reps=1,
        docs=False,
    ),
    "smoke": Plan(
        mode="smoke",
        reps=1,
        workloads=("W1", "W3", "W4"),
        upstream=(),
        w1_runs=5,
        w1_steps=3,
        w3_ks=(20,),
        w3_budget_s=30.0,
        w4_runs=5,
        w4_steps=3,
        w4_warmup=1,
        w4_sleepers=2,
        w4_sleep="1s",
        w4_timeout_s=20.0,
        postgres=False,
        profile=False,
        plots=False,
        docs=False,
    ),
}
