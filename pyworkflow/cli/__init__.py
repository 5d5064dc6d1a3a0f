"""The ``pyworkflow`` command line.

Example (shell)::

    pyworkflow runs list --output json
    pyworkflow runs logs run_1a2b3c4d5e6f7a8b
"""

from pyworkflow.cli.main import main

__all__ = ["main"]
