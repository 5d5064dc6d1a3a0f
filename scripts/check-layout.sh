#!/usr/bin/env bash
# Layering and size rules from DESIGN.md §3/§4 that ruff and mypy cannot express:
#  - pyworkflow/engine/ imports no broker, CLI or database driver;
#  - no file under pyworkflow/ is longer than 500 lines.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_LINES=500
FORBIDDEN='celery|kombu|click|asyncpg|aiosqlite|redis'
status=0

if [ -d pyworkflow/engine ]; then
    # `import x`, `import a, x`, `from x import ...`, `from x.sub import ...`, indented or not.
    bad=$(grep -rnE --include='*.py' \
        "^\s*(import\s+([A-Za-z_][A-Za-z0-9_.]*\s*,\s*)*|from\s+)($FORBIDDEN)\b" \
        pyworkflow/engine || true)
    if [ -n "$bad" ]; then
        echo "check-layout: pyworkflow/engine/ must not import $FORBIDDEN:" >&2
        echo "$bad" >&2
        status=1
    fi
fi

long=$(find pyworkflow -name '*.py' -type f -print0 | xargs -0 -r wc -l |
    awk -v max="$MAX_LINES" '$2 != "total" && $1 > max {print "  " $2 " (" $1 " lines)"}')
if [ -n "$long" ]; then
    echo "check-layout: files over the $MAX_LINES-line ceiling (split by responsibility):" >&2
    echo "$long" >&2
    status=1
fi

[ "$status" = 0 ] && echo "check-layout: ok"
exit "$status"
