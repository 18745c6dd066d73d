#!/usr/bin/env bash
# Runs every test. The machine is prepared and PostgreSQL started the way README's first command
# (`cargo dev`, runtime-ext/dev) does it: the wasm target, Debian's packages, the Kafka-protocol
# broker and the MongoDB-wire server the pipeline tests start, and the system tests' database,
# migrated. Then the components and test fixtures are built to wasm, and the guest crates' unit
# tests, the kafka-bridge's, the host's unit and integration tests (which start the real
# `spinyard` and `kafka-bridge` binaries on loopback), and `cargo dev`'s own, which brings the
# whole platform up and runs every seed's examples against it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo dev setup
cargo dev postgres
wasm_build=(cargo build --target wasm32-wasip2 --release)
"${wasm_build[@]}" --workspace --exclude spinyard --exclude kafka-bridge --exclude spinyard-listener --exclude spinyard-dev --exclude spinyard-migrate --exclude native-baseline --exclude native-pg-baseline --exclude kafka-pipeline-bench \
    --exclude fixture-unsupported
# Built alone so that its extra spin-sdk feature (sqlite) does not leak into the other components.
"${wasm_build[@]}" -p fixture-unsupported

# `promtool check metrics` validates every component's /metrics in the host's tests.
if ! command -v promtool >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi

scripts/deploy-check.sh  # the SpinKube manifests (deploy/spinkube), offline
scripts/fuzz-venv.sh     # schemathesis, for the API fuzz test (runtime-ext/host/tests/api_fuzz.rs)

# Pure logic of the guest crates (validation, configuration layers), natively.
cargo test -p guest-kit -p catalogue -p business-logic -p customer-web-server \
    -p customer-management-api -p time-service
cargo test -p kafka-bridge -p kafka-bridge-protocol -p spinyard-listener
cargo build -p kafka-bridge  # the pipeline tests start the binary
# Three tests at a time: each pipeline test starts its own broker, MongoDB server, bridge and host,
# and nine such sets at once on two cores starve them (see issue 4's note).
cargo test -p spinyard -- --test-threads=3
# The suites that run the whole app again, with a fresh instance for every request: the
# components must be right whether or not an instance is reused (as `spin up` does by default).
SPINYARD_TEST_UP_ARGS="--max-instance-reuse-count 1" \
    cargo test -p spinyard --test systems --test pipeline --test observability -- --test-threads=3
# `cargo dev` itself, last: it runs the binaries built above (debug) with local services.
cargo test -p spinyard-dev -p spinyard-migrate
