#!/usr/bin/env bash
# Runs every test: builds the components and test fixtures to wasm, starts (if needed) and
# migrates the PostgreSQL the system tests use, then runs the guest crates' unit tests and
# the host's unit and integration tests, which start the real `spinyard` binary on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

wasm_build=(cargo build --target wasm32-wasip2 --release)
"${wasm_build[@]}" --workspace --exclude spinyard --exclude native-baseline --exclude fixture-unsupported
# Built alone so that its extra spin-sdk feature (sqlite) does not leak into the other components.
"${wasm_build[@]}" -p fixture-unsupported

scripts/postgres.sh

# Pure logic of the guest crates (validation, configuration layers), natively.
cargo test -p guest-kit -p catalogue -p business-logic
cargo test -p spinyard
