#!/usr/bin/env bash
# Installs the MongoDB-wire server the tests start (SecantusDB, from PyPI) into its own virtual
# environment, target/mongo-venv, unless it is there already. The tests start their own servers
# on free ports; to run one by hand:
#   target/mongo-venv/bin/secantusd-py --host 127.0.0.1 --port 27017 --storage-path target/mongo-data
set -euo pipefail
cd "$(dirname "$0")/.."

SECANTUS_VERSION=0.7.0b3
if [[ ! -x target/mongo-venv/bin/secantusd-py ]]; then
    python3 -m venv target/mongo-venv
    target/mongo-venv/bin/pip install --quiet "SecantusDB==$SECANTUS_VERSION"
fi
