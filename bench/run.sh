#!/usr/bin/env bash
# The app as shipped, against two baselines measured in the same run: wrk (2 threads,
# 32 connections, --latency) on each endpoint of each server in turn.
#
#   bench/run.sh [seconds-per-run]      (default 8)
#
# PostgreSQL endpoints: each endpoint on three servers, one after another (so the rows of one
# endpoint are close in time), against the same local databases:
#   flask      bench/flask/app.py on gunicorn --workers 4 (the seeds' stack; no logs or metrics)
#   native-pg  bench/native-pg: axum + tokio-postgres, 64 pooled clients, cached statements
#              (what native Rust does; no logs or metrics)
#   spinyard   the real spin.toml, every component, as shipped: a JSON log line per request
#              (to a log file), metrics (in a fresh SQLite file, the store `spin up` gives them),
#              the catalogue in db mode
# After each POST /products run, the rows it inserted (category 'bench') are deleted, so every
# GET /products run reads the same table.
# No database: the catalogue as shipped (JSON mode) and the minimal fixture (the host's floor:
# a component answering "ok") against bench/native-baseline answering the same bodies.
# Last, the db-mode host's resident memory after all that load (VmRSS, and its peak VmHWM).
#
# How to read it: the machine is shared and noisy, so absolute req/s move from run to run; the
# ratios between rows of one endpoint (measured within seconds of each other) are what matters.
# vs_flask above 1 is faster than Flask; vs_native is the share of native Rust's throughput.
# req/s counts 2xx answers only. A row with non-2xx answers or socket errors is flagged, and the
# script then ends with a summary and exit status 1: a figure that measured failures is not a
# figure.
#
# Environment:
#   SPINYARD_BIN   the host to run (default target/release/spinyard, built by this script)
#   APP_DIR        the directory holding the spin.toml and its built wasm (default this repo,
#                  built by this script): with these two, an older build runs the same bench
#   SPINYARD_ARGS  extra `spinyard up` flags, e.g. "--max-instance-reuse-count 1" (not
#                  --runtime-config-file: the script sets it)
#   PGPORT         PostgreSQL, migrated (`cargo dev postgres`), on 127.0.0.1:${PGPORT:-5432}
set -euo pipefail
# Paths in the environment are relative to where the script is started from.
[ -z "${SPINYARD_BIN:-}" ] || SPINYARD_BIN="$(realpath -m "$SPINYARD_BIN")"
[ -z "${APP_DIR:-}" ] || APP_DIR="$(realpath -m "$APP_DIR")"
cd "$(dirname "$0")/.."
repo="$PWD"
duration="${1:-8}"
port="${PGPORT:-5432}"
spinyard_bin="${SPINYARD_BIN:-$repo/target/release/spinyard}"
app_dir="${APP_DIR:-$repo}"
read -r -a spinyard_args <<<"${SPINYARD_ARGS:-}"

# --- what runs ----------------------------------------------------------------------------
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
pg_isready -q -h 127.0.0.1 -p "$port" || PGPORT="$port" cargo dev postgres
venv="$repo/target/bench-venv"
[ -x "$venv/bin/gunicorn" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q -r bench/flask/requirements.txt; }

native_packages=(-p native-baseline -p native-pg-baseline)
[ -n "${SPINYARD_BIN:-}" ] || native_packages=(-p spinyard "${native_packages[@]}")
cargo build --release "${native_packages[@]}"
# The minimal fixture comes with the app when APP_DIR has it built, else from this repo.
minimal_wasm="$app_dir/target/wasm32-wasip2/release/fixture_minimal.wasm"
wasm_packages=()
[ -n "${APP_DIR:-}" ] || wasm_packages=(-p catalogue -p backend -p frontend-api -p business-logic -p data-ingest
    -p time-service -p customer-web-server -p customer-management-api)
if [ -z "${APP_DIR:-}" ] || [ ! -f "$minimal_wasm" ]; then
    wasm_packages+=(-p fixture-minimal)
    minimal_wasm="$repo/target/wasm32-wasip2/release/fixture_minimal.wasm"
fi
[ ${#wasm_packages[@]} = 0 ] || cargo build --target wasm32-wasip2 --release "${wasm_packages[@]}"

export CATALOGUE_DSN="postgresql://devops:devops@127.0.0.1:$port/catalogue?sslmode=disable"
export PRODUCTS_DSN="postgresql://postgres:postgres@127.0.0.1:$port/products_db?sslmode=disable"
export APPDB_DSN="postgresql://appuser:password@127.0.0.1:$port/appdb?sslmode=disable"
for dsn in "$CATALOGUE_DSN" "$PRODUCTS_DSN" "$APPDB_DSN"; do
    table=products; [ "$dsn" = "$APPDB_DSN" ] && table=users
    psql "$dsn" -qAtc "SELECT 1 FROM $table LIMIT 1" >/dev/null ||
        { echo "${dsn%%\?*}: no table $table: run 'cargo dev db' first" >&2; exit 1; }
done
delete_bench_rows() { psql "$PRODUCTS_DSN" -qc "DELETE FROM products WHERE category = 'bench'"; }
delete_bench_rows  # left by an interrupted run
# GET /products returns the first 100 rows here (spinyard pages it, native-pg does the same) and
# the whole table in the Flask original: say how big it is (test runs leave rows in it).
echo "products_db.products has $(psql "$PRODUCTS_DSN" -qAtc "SELECT count(*) FROM products") rows"

work="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; delete_bench_rows 2>/dev/null || true; rm -rf "$work"' EXIT

# start NAME COMMAND…: runs COMMAND in the background (output in $work/NAME.log), waits for its
# address ("Serving http://…", or gunicorn's "Listening at: http://…"), sets $addr and $pid.
start() {
    local name="$1"; shift
    "$@" > "$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 3000); do  # compiling the app's components on a first start takes a while
        addr="$(grep -m1 -oE '^Serving http://[0-9.:]+|Listening at: http://[0-9.:]+' "$work/$name.log" |
            grep -oE 'http://[0-9.:]+' || true)"
        [ -n "$addr" ] && return
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start:" >&2; tail -n 40 "$work/$name.log" >&2; exit 1
}

# Each app process keeps its metrics in a fresh SQLite file (Spin's default store type) rather
# than in the app dir's .spin/, which the bench would otherwise fill.
app_up() {
    local name="$1"; shift
    printf '[key_value_store.default]\ntype = "spin"\npath = "%s"\n' "$work/$name.kv.db" > "$work/$name.runtime.toml"
    start "$name" env "$@" SPIN_VARIABLE_CATALOGUE_DB_PORT="$port" SPIN_VARIABLE_BACKEND_DB_PORT="$port" \
        SPIN_VARIABLE_APPDB_PORT="$port" SPIN_VARIABLE_TIME_EVENTS_DB_PORT="$port" \
        "$spinyard_bin" up --from "$app_dir/spin.toml" --listen 127.0.0.1:0 \
        --runtime-config-file "$work/$name.runtime.toml" "${spinyard_args[@]}"
}

start flask env PYTHONDONTWRITEBYTECODE=1 "$venv/bin/gunicorn" --chdir "$repo/bench/flask" --workers 4 \
    --bind 127.0.0.1:0 app:app
flask="$addr"
start native-pg target/release/native-pg-baseline 127.0.0.1:0
native_pg="$addr" native_pg_pid="$pid"
app_up app-db SPIN_VARIABLE_CATALOGUE_DATA_SOURCE=db
app_db="$addr" app_db_pid="$pid"
app_up app-json -u SPIN_VARIABLE_CATALOGUE_DATA_SOURCE
app_json="$addr"
start native target/release/native-baseline 127.0.0.1:0
native="$addr"
cat > "$work/minimal.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench-minimal"
[[trigger.http]]
route = "/ok"
component = "minimal"
[component.minimal]
source = "$minimal_wasm"
TOML
start minimal "$spinyard_bin" up --from "$work/minimal.toml" --listen 127.0.0.1:0 "${spinyard_args[@]}"
minimal="$addr"

# The catalogue falls back to its JSON file when the database fails: check each mode is the one meant.
for check in "$app_db db" "$app_json json"; do
    read -r url mode <<<"$check"
    headers="$(curl -s -D - -o /dev/null "$url/api/products")"
    grep -qix "x-data-source: $mode" <<<"${headers//$'\r'/}" ||
        { echo "$url/api/products is not served in $mode mode:" >&2; tail -n 20 "$work"/app-*.log >&2; exit 1; }
done

# --- measuring ----------------------------------------------------------------------------
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "bench item", "price": 9.99, "category": "bench"}'
LUA

# measure [wrk flags…] URL → "2xx/s p50_ms p99_ms non2xx socket_errors", after a 1 s warm-up.
measure() {
    wrk -t2 -c32 -d1s "$@" >/dev/null 2>&1 || true
    wrk -t2 -c32 -d"${duration}s" --latency "$@" > "$work/wrk.out" 2>&1 ||
        { echo "wrk failed on ${*: -1}:" >&2; cat "$work/wrk.out" >&2; exit 1; }
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
        / requests in / { total = $1; secs = $4; sub(/s,?$/, "", secs) }
        /Non-2xx/ { bad = $NF } /Socket errors/ { gsub(",", ""); errors = $4 + $6 + $8 + $10 }
        END { rate = 0; if (secs > 0) rate = (total - bad) / secs
              printf "%.0f %.2f %.2f %d %d\n", rate, p50, p99, bad, errors }' "$work/wrk.out"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "-" }'; }
row() {  # TARGET "req/s p50 p99 non2xx errors" RATIO…
    local target="$1" rps p50 p99 bad errors; read -r rps p50 p99 bad errors <<<"$2"; shift 2
    printf '%-40s %9s %8s %8s %7s' "$target" "$rps" "$p50" "$p99" "$bad"
    printf ' %9s' "$@"
    printf '\n'
    [ "$errors" = 0 ] || printf '%-40s %s socket errors (connect, read, write, timeout)\n' "" "$errors"
    if [ "$bad" != 0 ] || [ "$errors" != 0 ] || [ "$rps" = 0 ]; then
        failed+=("$target")
        printf '%-40s FAILED: non-2xx answers, socket errors or nothing answered\n' ""
    fi
}
failed=()

# pg_endpoint METHOD PATH: the three servers one after another, then their rows.
pg_endpoint() {
    local method="$1" path="$2" flags=() server url result flask_rps native_rps
    [ "$method" = POST ] && flags=(-s "$work/post.lua")
    declare -A results
    for server in flask native-pg spinyard; do
        case "$server" in flask) url="$flask" ;; native-pg) url="$native_pg" ;; spinyard) url="$app_db" ;; esac
        results[$server]="$(measure "${flags[@]}" "$url$path")"
        [ "$method" = POST ] && delete_bench_rows
    done
    flask_rps="${results[flask]%% *}" native_rps="${results[native-pg]%% *}"
    for server in flask native-pg spinyard; do
        result="${results[$server]}"
        row "$method $path ($server)" "$result" "$(ratio "${result%% *}" "$flask_rps")" "$(ratio "${result%% *}" "$native_rps")"
    done
}

echo
echo "PostgreSQL endpoints (wrk -t2 -c32, ${duration} s per run after 1 s of warm-up)"
printf '%-40s %9s %8s %8s %7s %9s %9s\n' target req/s p50_ms p99_ms non2xx vs_flask vs_native
pg_endpoint GET /api/products
pg_endpoint GET /api/products/1
pg_endpoint GET /products
pg_endpoint GET /products/1
pg_endpoint POST /products
pg_endpoint GET "/api/v1/users?limit=100"

echo
echo "No database"
printf '%-40s %9s %8s %8s %7s %9s\n' target req/s p50_ms p99_ms non2xx vs_native
native_result="$(measure "$native/api/products")"
app_result="$(measure "$app_json/api/products")"
row "GET /api/products (native)" "$native_result" 1.00x
row "GET /api/products, JSON mode (spinyard)" "$app_result" "$(ratio "${app_result%% *}" "${native_result%% *}")"
native_result="$(measure "$native/ok")"
app_result="$(measure "$minimal/ok")"
row "GET /ok (native)" "$native_result" 1.00x
row "GET /ok, minimal fixture (spinyard)" "$app_result" "$(ratio "${app_result%% *}" "${native_result%% *}")"

echo
echo "Memory after load (resident now / peak)"
for entry in "spinyard (db mode) $app_db_pid" "native-pg $native_pg_pid"; do
    awk -v name="${entry% *}" '/^VmRSS/ { rss = $2 } /^VmHWM/ { hwm = $2 }
        END { printf "%-40s VmRSS %.1f MiB, VmHWM %.1f MiB\n", name, rss / 1024, hwm / 1024 }' "/proc/${entry##* }/status"
done
echo "spinyard (db mode) logged $(wc -l < "$work/app-db.log") lines"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${#failed[@]} measurement(s) had failed requests: ${failed[*]}" >&2
    exit 1
fi
