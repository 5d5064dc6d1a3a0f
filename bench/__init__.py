"""Benchmarks of pyworkflow against pyworkflow-engine from PyPI and the storage floor.

Run ``python -m bench`` (or ``make bench``); see ``docs/benchmarks.md`` for the method.
Each workload is a script under ``bench/workloads/`` run in a subprocess by the
interpreter of the venv under test, so ours and upstream run the same workload text.
"""
