#!/usr/bin/env bash
# The PostgreSQL endpoints through spinyard against a minimal Flask + gunicorn equivalent
# (bench/flask/app.py, installed from PyPI into target/bench-venv), same database, same run.
#
#   bench/pg.sh [seconds-per-run]      (default 10)
#
# gunicorn runs the seed's `--workers 4` sync workers; both servers share the machine's cores
# with wrk and PostgreSQL. Prints req/s, p50, p99 and spinyard's req/s over Flask's.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections=32

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
scripts/postgres.sh >/dev/null
venv="$PWD/target/bench-venv"
[ -x "$venv/bin/gunicorn" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q -r bench/flask/requirements.txt; }
cargo build -q --release -p spinyard
cargo build -q --target wasm32-wasip2 --release -p catalogue -p backend

work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port="${PGPORT:-5432}"
export CATALOGUE_DSN="postgresql://devops:devops@127.0.0.1:$port/catalogue"
export PRODUCTS_DSN="postgresql://postgres:postgres@127.0.0.1:$port/products_db"
export SPIN_VARIABLE_CATALOGUE_DATA_SOURCE=db SPIN_VARIABLE_CATALOGUE_DB_PORT="$port" SPIN_VARIABLE_BACKEND_DB_PORT="$port"

target/release/spinyard up --listen 127.0.0.1:0 > "$work/spinyard.log" 2>&1 &
(cd bench/flask && "$venv/bin/gunicorn" --workers 4 --bind 127.0.0.1:5099 app:app > "$work/flask.log" 2>&1) &
spinyard=""
for _ in $(seq 1 600); do
    spinyard="$(grep -m1 '^Serving ' "$work/spinyard.log" | cut -d' ' -f2 || true)"
    [ -n "$spinyard" ] && curl -sf "http://127.0.0.1:5099/products" >/dev/null && break
    sleep 0.1
done
flask="http://127.0.0.1:5099"

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "bench item", "price": 9.99, "category": "bench"}'
LUA

measure() {
    wrk -t2 -c"$connections" -d"${duration}s" --latency "$@" 2>&1 | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
        /Non-2xx/ { bad = $NF } END { printf "%.0f %.2f %.2f %s\n", rps, p50, p99, bad + 0 }'
}

printf '%-26s %10s %9s %9s %8s %9s\n' target req/s p50_ms p99_ms non2xx ratio
pair() {
    local label="$1"; shift
    read -r f_rps f_p50 f_p99 f_bad <<<"$(measure "$@" "$flask$path")"
    read -r s_rps s_p50 s_p99 s_bad <<<"$(measure "$@" "$spinyard$path")"
    printf '%-26s %10s %9s %9s %8s %9s\n' "flask $label" "$f_rps" "$f_p50" "$f_p99" "$f_bad" "1.00x"
    printf '%-26s %10s %9s %9s %8s %9s\n' "spinyard $label" "$s_rps" "$s_p50" "$s_p99" "$s_bad" \
        "$(awk -v a="$s_rps" -v b="$f_rps" 'BEGIN { printf "%.2fx", a / b }')"
}
path=/api/products pair "GET /api/products"
path=/products pair "GET /products"
path=/products pair "POST /products" -s "$work/post.lua"

# Leave the table as the migrations made it, so later GET /products runs compare alike.
psql "$PRODUCTS_DSN" -qc "DELETE FROM products WHERE category = 'bench'"
