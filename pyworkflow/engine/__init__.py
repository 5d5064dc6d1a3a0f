"""The engine: events, the replay fold, activations and the execution API.

Kept import-light on purpose: ``pyworkflow.engine.executor`` sits above the
runtimes and is imported by the package root, not from here.
"""
