#!/usr/bin/env bash
# The purchase pipeline (seed 003) under load, beside a direct rdkafka baseline, same run:
# starts tansu (memory storage), SecantusDB, PostgreSQL, the release host serving spin.toml and
# the release kafka-bridge, then runs bench/kafka-pipeline.
#
#   bench/kafka.sh [seconds-per-phase] [latency-rate]      (defaults 10, 1000)
#
# Everything shares the machine's cores: broker, MongoDB server, bridge, host and load.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
rate="${2:-1000}"

cargo dev setup      # tansu and SecantusDB, installed into target/
cargo dev postgres   # the time service's database
cargo build -q --release -p spinyard -p kafka-bridge -p kafka-pipeline-bench
cargo build -q --target wasm32-wasip2 --release -p customer-web-server -p customer-management-api -p time-service

work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kafka_port="$(free_port)"; mongo_port="$(free_port)"; bridge_port="$(free_port)"; app_port="$(free_port)"
# The bridge refuses short or known secrets, and one secret for both directions.
secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
delivery_secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

target/tools/bin/tansu broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$kafka_port" --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    > "$work/tansu.log" 2>&1 &
target/mongo-venv/bin/secantusd-py --host 127.0.0.1 --port "$mongo_port" --storage-path "$work/mongo" \
    > "$work/mongo.log" 2>&1 &
SPIN_VARIABLE_KAFKA_BRIDGE_ADDRESS="127.0.0.1:$bridge_port" SPIN_VARIABLE_KAFKA_BRIDGE_SECRET="$secret" \
SPIN_VARIABLE_KAFKA_BRIDGE_DELIVERY_SECRET="$delivery_secret" \
SPIN_VARIABLE_TIME_EVENTS_DB_PORT="${PGPORT:-5432}" \
    target/release/spinyard up --listen "127.0.0.1:$app_port" > "$work/spinyard.log" 2>&1 &
# wait_for WHAT LOG COMMAND…: polls COMMAND for a minute; fails loudly with LOG's tail.
wait_for() {
    local what="$1" log="$2"; shift 2
    for _ in $(seq 1 600); do
        "$@" && return
        sleep 0.1
    done
    echo "$what did not come up within 60 s:" >&2; tail -n 30 "$log" >&2; exit 1
}
wait_for "spinyard" "$work/spinyard.log" \
    curl -sf -o /dev/null "http://127.0.0.1:$app_port/customer-web-server/health"
KAFKA_BROKERS="127.0.0.1:$kafka_port" MONGODB_URI="mongodb://127.0.0.1:$mongo_port" \
KAFKA_BRIDGE_LISTEN="127.0.0.1:$bridge_port" KAFKA_BRIDGE_COMPONENTS_URL="http://127.0.0.1:$app_port" \
KAFKA_BRIDGE_SECRET="$secret" KAFKA_BRIDGE_DELIVERY_SECRET="$delivery_secret" RUST_LOG=warn \
    target/release/kafka-bridge --config kafka-bridge.toml > "$work/bridge.log" 2>&1 &
bridge_up() { curl -sf "http://127.0.0.1:$bridge_port/health" | grep -q '"kafka":"UP"'; }
wait_for "the kafka-bridge (with Kafka)" "$work/bridge.log" bridge_up
sleep 3  # the subscriptions join their consumer groups

target/release/kafka-pipeline-bench --app "http://127.0.0.1:$app_port" \
    --bridge "http://127.0.0.1:$bridge_port" --secret "$secret" --brokers "127.0.0.1:$kafka_port" \
    --seconds "$seconds" --rate "$rate"
echo "bridge metrics:"
curl -sf "http://127.0.0.1:$bridge_port/metrics" |
    grep -E '^kafka_bridge_((dead_lettered|retries|deliveries)_total|delivery_latency_seconds_(sum|count))' ||
    { echo "the bridge's metrics are missing" >&2; exit 1; }
