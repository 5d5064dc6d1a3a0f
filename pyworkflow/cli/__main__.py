"""``python -m pyworkflow.cli``."""

from pyworkflow.cli.main import main

if __name__ == "__main__":
    main()
