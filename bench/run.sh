#!/usr/bin/env bash
# Throughput and latency of spinyard (a fresh wasm instance per request) against a native hyper
# server answering the same bodies, measured in the same run with wrk at 32 connections; and the
# cost of the catalogue's Prometheus metrics (two key-value increments per request), against the
# same component without a store to count in.
#
#   bench/run.sh [seconds-per-run]      (default 10)
#
# Prints one row per target: req/s, p50, p99, and req/s as a ratio of the native baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections=32
threads=2

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p spinyard -p native-baseline
cargo build --target wasm32-wasip2 --release -p catalogue -p fixture-minimal -p fixture-kv

work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
wasm="$PWD/target/wasm32-wasip2/release"
cat > "$work/spin.toml" <<TOML
spin_manifest_version = 2
[application]
name = "bench"
[[trigger.http]]
route = "/api/products/..."
component = "catalogue"
[[trigger.http]]
route = "/ok"
component = "minimal"
[[trigger.http]]
route = "/kv/..."
component = "kv"
[component.catalogue]
source = "$wasm/catalogue.wasm"
[component.minimal]
source = "$wasm/fixture_minimal.wasm"
[component.kv]
source = "$wasm/fixture_kv.wasm"
key_value_stores = ["default"]
TOML
# The same app with the catalogue counting its requests: in the default store (a SQLite file,
# as `spin up` keeps it) and in memory (as deploy/spinkube configures it per pod).
sed 's/^source = "\(.*\)catalogue.wasm"$/&\nkey_value_stores = ["default"]/' "$work/spin.toml" > "$work/metered.toml"
grep -q 'catalogue.wasm"$' "$work/metered.toml" && grep -A1 'catalogue.wasm"$' "$work/metered.toml" | grep -q key_value_stores
printf '[key_value_store.default]\ntype = "spin"\n' > "$work/in-memory.toml"

# Start a server, wait for its "Serving http://…" line, print the address.
start() {
    local log="$work/$1.log"; shift
    "$@" > "$log" 2>&1 &
    for _ in $(seq 1 600); do
        if grep -q '^Serving ' "$log"; then grep -m1 '^Serving ' "$log" | cut -d' ' -f2; return; fi
        sleep 0.1
    done
    cat "$log" >&2; exit 1
}
spinyard="$(start spinyard target/release/spinyard up --listen 127.0.0.1:0 --from "$work/spin.toml")"
native="$(start native target/release/native-baseline 127.0.0.1:0)"
metered_file="$(start metered-file target/release/spinyard up --listen 127.0.0.1:0 --from "$work/metered.toml")"
metered_memory="$(start metered-memory target/release/spinyard up --listen 127.0.0.1:0 --from "$work/metered.toml" \
    --runtime-config-file "$work/in-memory.toml")"

# wrk's --latency report → "req/s p50 p99" (latencies in ms).
measure() {
    wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@" 2>&1 | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
        END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
LUA

printf '%-28s %10s %9s %9s %9s\n' target req/s p50_ms p99_ms ratio
row() {
    local name="$1" baseline="$2"; shift 2
    read -r rps p50 p99 <<<"$(measure "$@")"
    local ratio="-"
    [ -n "$baseline" ] && ratio="$(awk -v a="$rps" -v b="$baseline" 'BEGIN { printf "%.2fx", a / b }')"
    printf '%-28s %10s %9s %9s %9s\n' "$name" "$rps" "$p50" "$p99" "$ratio"
    last_rps="$rps"
}
row "native /ok" "" "$native/ok"; native_ok="$last_rps"
row "spinyard /ok (minimal)" "$native_ok" "$spinyard/ok"
row "native /api/products" "" "$native/api/products"; native_products="$last_rps"
row "spinyard /api/products" "$native_products" "$spinyard/api/products"
row "spinyard /kv (get+set)" "$native_ok" -s "$work/post.lua" "$spinyard/kv/counter"
row "spinyard /api/products" "" "$spinyard/api/products"; unmetered="$last_rps"
row "  + metrics (SQLite file)" "$unmetered" "$metered_file/api/products"
row "  + metrics (in memory)" "$unmetered" "$metered_memory/api/products"
