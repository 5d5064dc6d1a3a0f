"""``python -m pyworkflow.cli``."""

from pyworkflow.cli.main import main

main()
