#!/usr/bin/env bash
# The one command that sets up every database of the app, idempotently:
# creates the seeds' roles and databases when missing, then applies db/<database>/ migrations
# (`spinyard migrate`, each database as its owner).
#
#   PG_ADMIN_URL   a superuser, default postgres://postgres:postgres@127.0.0.1:${PGPORT:-5432}/postgres
#   <DB>_URL       per database, defaults below: the seeds' credentials (change them in production)
set -euo pipefail
cd "$(dirname "$0")/.."

server="127.0.0.1:${PGPORT:-5432}"
admin_url="${PG_ADMIN_URL:-postgres://postgres:postgres@$server/postgres}"
# database owner password
databases=(
    "catalogue devops devops"        # seed 000
    "products_db postgres postgres"  # seed 001
    "appdb appuser password"         # seed 004
    "time_events timeservice timeservice"  # seed 002 (its SQLite tables)
)

for entry in "${databases[@]}"; do
    read -r database owner password <<<"$entry"
    psql "$admin_url" -v ON_ERROR_STOP=1 -q <<SQL
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', '$owner', '$password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$owner') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$database', '$owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database') \gexec
SQL
done

cargo build -q -p spinyard
for entry in "${databases[@]}"; do
    read -r database owner password <<<"$entry"
    url_var="${database^^}_URL"
    target/debug/spinyard migrate --url "${!url_var:-postgres://$owner:$password@$server/$database}" "db/$database"
done
