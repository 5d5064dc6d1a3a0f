"""The Celery examples, importable as one package by workers and Beat.

Workers run the workflows of the scripts in this folder, so they must import them:
``PYWORKFLOW_DISCOVER=examples.celery.durable`` imports every example below (run the
workers from the repository root). Each script is also run directly, as the client:
``python examples/celery/durable/01_basic_workflow.py``. See ../README.md.
"""

import importlib

EXAMPLES = (
    "01_basic_workflow",
    "02_long_running",
    "03_retries",
    "04_batch_processing",
    "05_idempotency",
    "06_fault_tolerance",
    "07_hooks",
    "08_cancellation",
    "09_child_workflows",
    "10_child_workflow_patterns",
    "11_continue_as_new",
    "12_schedules",
)

for _name in EXAMPLES:
    importlib.import_module(f"{__name__}.{_name}")
