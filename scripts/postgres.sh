#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:$PGPORT (default 5432), then provisions
# and migrates the app's databases (scripts/db.sh). Idempotent: run it as often as you like.
#
# With no server there, it starts Debian's PostgreSQL (15) in target/postgres/ with the
# superuser `postgres`/`postgres` on loopback only: for development and tests, not production.
set -euo pipefail
cd "$(dirname "$0")/.."

export PGPORT="${PGPORT:-5432}"
pg_dir="$PWD/target/postgres"

if ! pg_isready -q -h 127.0.0.1 -p "$PGPORT"; then
    bin_dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    if [[ -z "$bin_dir" ]]; then
        echo "installing Debian's PostgreSQL server" >&2
        apt-get install -y -qq postgresql >/dev/null
        bin_dir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    fi
    # The server refuses to run as root: run it as `postgres` when we are root.
    as_owner=()
    if [[ "$(id -u)" == 0 ]]; then
        as_owner=(runuser -u postgres --)
        # A checkout `postgres` cannot reach (a private parent directory, e.g. `mktemp -d`):
        # keep this checkout's server in postgres's own home instead.
        if ! runuser -u postgres -- test -x "$PWD"; then
            pg_dir="$(getent passwd postgres | cut -d: -f6)/spinyard/$(printf %s "$PWD" | sha256sum | cut -c1-16)"
        fi
    fi
    data_dir="$pg_dir/data"
    mkdir -p "$data_dir"
    [[ "$(id -u)" == 0 ]] && chown -R postgres: "$pg_dir"
    cd "$pg_dir"  # The server's own working directory, which its user can reach.
    if [[ ! -f "$data_dir/PG_VERSION" ]]; then
        password_file="$(mktemp)"
        echo postgres >"$password_file"
        chmod 644 "$password_file"
        "${as_owner[@]}" "$bin_dir/initdb" -D "$data_dir" -U postgres --pwfile="$password_file" \
            --auth-host=scram-sha-256 --auth-local=peer -E UTF8 --locale=C.UTF-8 >/dev/null
        rm -f "$password_file"
    fi
    # max_connections: each app pool holds up to 64 clients per address.
    "${as_owner[@]}" "$bin_dir/pg_ctl" -D "$data_dir" -l "$pg_dir/server.log" -w start \
        -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=400 -c fsync=off" >/dev/null
    echo "PostgreSQL started on 127.0.0.1:$PGPORT (data in $data_dir)" >&2
    cd - >/dev/null
fi

scripts/db.sh
