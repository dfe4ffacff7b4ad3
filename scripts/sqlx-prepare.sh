#!/usr/bin/env bash
# Refreshes (or, with --check, verifies) the query metadata in .sqlx/ that sqlx's macros
# check the worker's statements against at build time (.cargo/config.toml builds offline).
# Run it after changing a statement or a migration, and commit .sqlx/.
#
# It makes a throwaway database on the local Postgres (scripts/pg-ensure.sh), migrates it
# as a standalone install does (listmonk-shaped tables and the worker's schema), then runs
# `cargo sqlx prepare --workspace [--check]` against it, and drops it. sqlx-cli is
# installed with cargo when missing, at the version Cargo.lock pins for sqlx.
#
# Usage: bash scripts/sqlx-prepare.sh [--check]
set -euo pipefail

me="sqlx-prepare"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$repo"
check=()
case "${1:-}" in
    --check) check=(--check) ;;
    "") ;;
    *) die "unknown argument $1 (usage: bash scripts/sqlx-prepare.sh [--check])" ;;
esac

version="$(awk '/^name = "sqlx"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$version" ] || die "Cargo.lock pins no sqlx version"
if ! cargo sqlx --version 2>/dev/null | grep -qF "$version"; then
    log "installing sqlx-cli $version (postgres only)"
    cargo install sqlx-cli --version "$version" --locked --no-default-features \
        --features postgres,rustls >&2
fi

server="$(bash scripts/pg-ensure.sh)" || die "scripts/pg-ensure.sh failed"
db="bounceops_sqlx_$$"
base="${server%/*}"
url="$base/$db"
psql -q "$server" -c "CREATE DATABASE $db" >/dev/null
trap 'psql -q "$server" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

# The worker cannot be built to migrate it while its metadata is stale (that is why this
# runs), so the steps of `bounce-worker migrate --standalone` (worker/src/store/migrate.rs)
# are taken here with psql and sqlx-cli: listmonk-shaped tables, the schema, then the
# migrations with the schema first on the search path, as the worker runs them.
log "migrating a throwaway database ($db) as a standalone install"
psql -q -v ON_ERROR_STOP=1 "$url" -1 -f worker/sql/listmonk_standalone.sql >/dev/null \
    || die "worker/sql/listmonk_standalone.sql failed on $db"
psql -q -v ON_ERROR_STOP=1 "$url" -c "CREATE SCHEMA bounceops" >/dev/null
cargo sqlx migrate run --source worker/migrations \
    --database-url "$url?options=-c%20search_path%3Dbounceops%2Cpublic" >&2 \
    || die "the migrations failed on $db"

log "cargo sqlx prepare --workspace ${check[*]}"
if ! DATABASE_URL="$url" cargo sqlx prepare --workspace "${check[@]}" >&2; then
    [ "${#check[@]}" -eq 0 ] \
        || die ".sqlx/ is stale: a statement or a migration changed; run 'bash scripts/sqlx-prepare.sh' and commit .sqlx/"
    die "cargo sqlx prepare failed"
fi
