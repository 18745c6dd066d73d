#!/usr/bin/env bash
# Installs the Kafka-protocol broker the tests start (tansu, from crates.io) into target/tools,
# unless it is there already. The tests start their own brokers (memory storage) on free ports;
# to run one by hand: target/tools/bin/tansu broker --storage-engine memory://tansu/
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION=0.6.0
if [[ ! -x target/tools/bin/tansu ]] || ! target/tools/bin/tansu --version | grep -q "$TANSU_VERSION"; then
    cargo install --quiet --locked --root target/tools tansu --version "$TANSU_VERSION" \
        --features dynostore,postgres
fi
