#!/usr/bin/env bash
# Makes target/fuzz-venv: schemathesis from PyPI, for the API fuzz test
# (runtime-ext/host/tests/api_fuzz.rs, against api/openapi.yaml). Created once, again only when
# the pins change; every package is pinned (--no-deps), so each run fuzzes with the same code.
# Needs python3 with venv (Debian: python3-venv, which `cargo dev setup` installs).
set -euo pipefail
cd "$(dirname "$0")/.."

pins=(
    schemathesis==4.32.5
    hypothesis==6.170.17 hypothesis-graphql==0.13.5 graphql-core==3.3.2 sortedcontainers==2.4.0
    jsonschema_rs==0.60.3 PyYAML==6.0.4 harfile==0.6.0 pyrate-limiter==4.5.1 Werkzeug==3.1.9 MarkupSafe==3.0.4
    requests==2.34.2 urllib3==2.8.0 idna==3.20 certifi==2026.10.19.post1 charset-normalizer==3.5.3
    click==8.5.1 rich==15.0.0 Pygments==2.21.0 markdown-it-py==4.3.0 mdurl==0.1.2
    pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 packaging==26.4 anyio==4.16.0 typing-extensions==4.16.0
)
venv=target/fuzz-venv
mkdir -p target
# One creator at a time: the fuzz test's two tests, or two test runs, may ask at once.
exec 9>target/fuzz-venv.lock
flock 9
if [[ ! -x $venv/bin/schemathesis ]] || [[ "$(cat $venv/pins 2>/dev/null)" != "${pins[*]}" ]]; then
    echo "Installing schemathesis and its pinned dependencies from PyPI into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "${pins[@]}"
    echo "${pins[*]}" >"$venv/pins"
fi
