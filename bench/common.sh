# Shared by the bench/*.sh scripts: a fresh benchmark database and the worker (release, or
# debug in smoke mode).
# shellcheck shell=bash

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
log() { printf 'bench: %s\n' "$*" >&2; }

target="${CARGO_TARGET_DIR:-$repo/target}"
# Smoke mode (BENCH_SMOKE=1, which .ci/run sets after the tests): the debug build the tests
# left and sizes of seconds, so that every check a bench makes runs in CI; its figures mean
# nothing then.
smoke="${BENCH_SMOKE:-0}"
profile=release
if [ "$smoke" = 1 ]; then profile=debug; fi
worker_bin="$target/$profile/bounce-worker"

# cargo build in the bench's profile: `bench_build -p bounce-worker --example loadgen`.
bench_build() {
    log "building ($profile)"
    if [ "$smoke" = 1 ]; then cargo build -q "$@"; else cargo build -q --release "$@"; fi
}

# Prints the admin URL; creates the database $1 afresh and migrates it standalone.
bench_database() {
    local db="$1" admin
    admin="$(bash scripts/pg-ensure.sh)"
    admin="${admin##*$'\n'}"
    psql "$admin" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >&2
    db_url="${admin%/*}/$db"
    export DATABASE_URL="$db_url"
    bench_dir="$(mktemp -d)"
    mkdir -p "$bench_dir/secrets/db" "$bench_dir/secrets/api"
    printf '%s\n' "$db_url" >"$bench_dir/secrets/db/url"
    printf 'bench:bench-token\n' >"$bench_dir/secrets/api/credentials"
    cat >"$bench_dir/config.yaml" <<YAML
database: {urlSecretRef: {name: db, key: url}, schema: standalone, maxConnections: ${BENCH_MAX_CONNECTIONS:-24}}
api: {credentialsSecretRef: {name: api, key: credentials}}
${BENCH_EXTRA_SPEC:-}
YAML
    "$worker_bin" migrate --config "$bench_dir/config.yaml" --secrets-dir "$bench_dir/secrets" \
        2>"$bench_dir/migrate.log" || { cat "$bench_dir/migrate.log" >&2; return 1; }
}

# Starts the worker on $1 (port) and waits until it is ready; sets worker_pid.
start_worker() {
    local port="$1"
    "$worker_bin" run --config "$bench_dir/config.yaml" --secrets-dir "$bench_dir/secrets" \
        --listen "127.0.0.1:$port" 2>"$bench_dir/worker.log" &
    worker_pid=$!
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0
        kill -0 "$worker_pid" 2>/dev/null || { cat "$bench_dir/worker.log" >&2; return 1; }
        sleep 0.1
    done
    log "worker not ready"; return 1
}

stop_worker() {
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
}

# kB of a process's resident set (VmRSS) or peak (VmHWM).
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
