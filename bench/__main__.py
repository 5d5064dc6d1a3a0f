"""``python -m bench [--quick | --smoke] [--only W1,W3] [--reps N]``."""

from bench.cli import main

raise SystemExit(main())
