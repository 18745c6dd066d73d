#!/usr/bin/env bash
# Checks the SpinKube manifests offline (deploy/spinkube/check.py): schemas, references between
# them and against spin.toml, and self-tests. Installs its pinned Python packages from PyPI into
# target/deploy-venv once (again only when the pins change).
set -euo pipefail
cd "$(dirname "$0")/.."

pins=(
    kubernetes-validate==1.37.0  # Kubernetes' JSON schemas, strict variants, 1.25 to 1.37
    jsonschema==4.26.0 referencing==0.37.0 jsonschema-specifications==2025.9.1 rpds-py==2026.9.1 attrs==26.1.0
    PyYAML==6.0.3 importlib-resources==7.1.0 typing-extensions==4.16.0 packaging==26.3
)
venv=target/deploy-venv
if [[ ! -x $venv/bin/python ]] || [[ "$(cat $venv/pins 2>/dev/null)" != "${pins[*]}" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "${pins[@]}"
    echo "${pins[*]}" >"$venv/pins"
fi
"$venv/bin/python" deploy/spinkube/check.py
