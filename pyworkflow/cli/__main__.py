"""``python -m pyworkflow.cli``: the same command as the ``pyworkflow`` script."""

from pyworkflow.cli.main import main

if __name__ == "__main__":
    # Usage lines and completion say "pyworkflow", not "python -m pyworkflow.cli".
    main(prog_name="pyworkflow")
