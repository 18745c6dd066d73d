#!/usr/bin/env bash
# The purchase pipeline's soak at a chosen size (runtime-ext/host/tests/soak.rs; the test command
# runs it with 2,000): purchases by 16 clients, each retried with its Idempotency-Key until
# acknowledged, while the bridge is killed and MongoDB restarted at random moments (SOAK_CHAOS adds
# `broker`: see tests/soak.rs for what tansu does then); then every acknowledged purchase must be
# stored, none twice. Prints the figures; fails loudly otherwise.
#
#   bench/soak.sh [purchases] [chaos-ms] [seed]
#
# Defaults: 100000 purchases, a bridge kill or broker restart every 10 s on average, a new seed
# (printed; it replays the chaos).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo dev setup      # tansu and SecantusDB, installed into target/
cargo dev postgres   # the time service's database (the app's events)
cargo build -q -p kafka-bridge
cargo build -q --target wasm32-wasip2 --release -p customer-web-server -p customer-management-api -p time-service

export SOAK_PURCHASES="${1:-100000}" SOAK_CHAOS_MS="${2:-10000}" SOAK_CHAOS="${SOAK_CHAOS:-bridge,mongodb}"
if [ -n "${3:-}" ]; then export SOAK_SEED="$3"; fi
cargo test -q -p spinyard --test soak -- --nocapture
