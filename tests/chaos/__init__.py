"""Fault-injection scenarios (issue 10): real processes, real storage, injected faults,
and the invariants of :mod:`pyworkflow.testing.invariants` checked after each one."""
