#!/usr/bin/env bash
# A tour of the pyworkflow command line, in a fresh temporary directory (see docs/guides/cli.md).
#
#   examples/cli/tour.sh                  # uses `pyworkflow` from PATH
#   PYWORKFLOW=.venv/bin/pyworkflow examples/cli/tour.sh
#
# Everything runs on the embedded SQLite default: no server needed.
set -euo pipefail

pw=${PYWORKFLOW:-pyworkflow}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

step() { printf '\n\033[1m$ pyworkflow %s\033[0m\n' "$*"; }

step quickstart --non-interactive --skip-docker
"$pw" quickstart --non-interactive --skip-docker >/dev/null

step workflows list
"$pw" workflows list

step workflows run hello --arg name=Ada
"$pw" workflows run hello --arg name=Ada

run_id=$("$pw" --output plain runs list --limit 1)
step runs timeline "$run_id"
"$pw" runs timeline "$run_id"

step runs logs "$run_id" --filter step.completed
"$pw" --output plain runs logs "$run_id" --filter step.completed

step workflows run approval --arg item=laptop --no-wait
"$pw" workflows run approval --arg item=laptop --no-wait

token=$("$pw" --output plain hooks list --status pending | head -n 1)
step hooks resume '<token>' --payload '{"approved": true}'
"$pw" hooks resume "$token" --payload '{"approved": true}'

step schedules create hello --interval 1s --schedule-id greet
"$pw" --output plain schedules create hello --interval 1s --schedule-id greet

step scheduler run --duration 3
"$pw" scheduler run --duration 3 --poll-interval 0.5

step runs list --output json '(counted)'
"$pw" --output json runs list --limit 100 |
    python3 -c 'import json, sys; runs = json.load(sys.stdin); print(len(runs), "runs,", sum(r["status"] == "completed" for r in runs), "completed")'
