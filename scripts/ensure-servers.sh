#!/usr/bin/env bash
# Make sure the servers the test suite starts by itself are installed:
# redis-server, and PostgreSQL's initdb/pg_ctl/postgres.
#
# Lookup order (tests/servers.py uses the same): PATH, then the highest version under
# /usr/lib/postgresql/*/bin (Debian keeps the server binaries off PATH).
# When something is missing and we run as root, install the Debian packages with apt-get;
# otherwise say what to install and fail. Running it again changes nothing.
set -euo pipefail

PG_TOOLS=(initdb pg_ctl postgres)

find_redis() {
    command -v redis-server 2>/dev/null || true
}

# Print the directory holding all of initdb, pg_ctl and postgres (one version, never a mix).
find_pg_bindir() {
    local dir tool ok
    dir=$(dirname "$(command -v postgres 2>/dev/null || echo /nonexistent/postgres)")
    for candidate in "$dir" $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        ok=1
        for tool in "${PG_TOOLS[@]}"; do
            [ -x "$candidate/$tool" ] || { ok=0; break; }
        done
        if [ "$ok" = 1 ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 0
}

missing_packages() {
    local pkgs=()
    [ -n "$(find_redis)" ] || pkgs+=(redis-server)
    [ -n "$(find_pg_bindir)" ] || pkgs+=(postgresql)
    # No Docker engine runs here, but `docker-compose config` validates the compose
    # file users run, without one.
    command -v docker-compose >/dev/null 2>&1 || pkgs+=(docker-compose)
    echo "${pkgs[*]:-}"
}

packages=$(missing_packages)
if [ -n "$packages" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-servers: missing server binaries for the test suite: $packages" >&2
        echo "ensure-servers: install them, e.g.:  sudo apt-get install -y $packages" >&2
        echo "ensure-servers: (or put redis-server / initdb+pg_ctl+postgres on PATH), then rerun." >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure-servers: missing $packages and no apt-get here; install them by hand." >&2
        exit 1
    fi
    echo "ensure-servers: installing $packages with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    {
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $packages
    } </dev/null
    packages=$(missing_packages)
    if [ -n "$packages" ]; then
        echo "ensure-servers: still missing after apt-get install: $packages" >&2
        exit 1
    fi
fi

echo "ensure-servers: redis-server: $(find_redis)"
echo "ensure-servers: postgres bin: $(find_pg_bindir)"
echo "ensure-servers: docker-compose: $(command -v docker-compose)"
