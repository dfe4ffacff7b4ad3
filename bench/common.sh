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
# BENCH_LOCALE=NAME (say en_US.UTF-8, the locale many distributions' clusters are made with):
# the database is made with that locale, so that text keys compare by its collation rather
# than the server's default (C.UTF-8 on the machines BENCHMARKS.md names).
bench_database() {
    local db="$1" admin
    admin="$(bash scripts/pg-ensure.sh)"
    admin="${admin##*$'\n'}"
    local locale=""
    if [ -n "${BENCH_LOCALE:-}" ]; then locale="TEMPLATE template0 LOCALE '$BENCH_LOCALE'"; fi
    psql "$admin" -qX -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db $locale" >&2
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

# Starts the worker on $1 (port), with the rest as more `run` arguments (a role, its
# listener), and waits until it is ready; sets worker_pid.
start_worker() {
    local port="$1"
    "$worker_bin" run "${@:2}" --config "$bench_dir/config.yaml" --secrets-dir "$bench_dir/secrets" \
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

# Postfix's smtp-source and smtp-sink, for the SMTP benches (MX and relay).
need_postfix_tools() {
    local tool
    for tool in smtp-source smtp-sink; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { log "$tool is missing: bash scripts/ensure-postfix.sh"; exit 1; }
    done
    export PATH="$PATH:/usr/sbin"
}

# A VERP signing key at the secret verp/key, as spec.smtp.verpKeySecretRef names it.
bench_verp_key() {
    mkdir -p "$bench_dir/secrets/verp"
    openssl rand -base64 48 >"$bench_dir/secrets/verp/key"
}

# Waits until something accepts TCP connections on 127.0.0.1:$1 (smtp-sink, just started).
wait_for_port() {
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
    log "nothing listens on port $1"; return 1
}

# Messages per second of smtp-source sending $messages messages in $sessions sessions to
# $1 (host:port), several per session as listmonk sends them; the rest are smtp-source's
# envelope and message arguments (-f, -t, -F).
source_rate() {
    local addr="$1" t0 t1
    shift
    t0="$(date +%s.%N)"
    ${source_cpus:+taskset -c "$source_cpus"} smtp-source -d -s "$sessions" -m "$messages" "$@" "$addr"
    t1="$(date +%s.%N)"
    bc -l <<<"scale=0; $messages / ($t1 - $t0)"
}

# kB of a process's resident set (VmRSS) or peak (VmHWM).
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
