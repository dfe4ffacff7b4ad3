#!/usr/bin/env bash
# Run the main job on a laptop, end to end: build the worker, give it a fresh
# database with a demo list, subscribers and campaign, start it, post sample
# bounces to the generic webhook, and show what it recorded and decided.
#
#   bash scripts/demo.sh
#
# Environment: DATABASE_URL (a superuser URL of a server to use; default: the
# one scripts/pg-ensure.sh finds or starts), BOUNCEOPS_DEMO_PORT (default 9000).
# The database bounceops_demo on that server is dropped and recreated.
# Exits non-zero if the worker's answers differ from the expected ones.
set -euo pipefail

me="demo"
# The demo's output is its show: progress and results both go to stdout, in order.
log() { printf '%s: %s\n' "$me" "$*"; }
die() { printf '%s: ERROR: %s\n' "$me" "$*" >&2; exit 1; }
step() { printf '\n%s: ==> %s\n' "$me" "$*"; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

port="${BOUNCEOPS_DEMO_PORT:-9000}"
base="http://127.0.0.1:$port"
auth="Authorization: token demo:demo-token"
config=examples/bounceconfig.yaml
secrets=examples/secrets
bin="${CARGO_TARGET_DIR:-target}/release/bounce-worker"
demo_dir=.demo
worker_log="$demo_dir/worker.log"
db_name=bounceops_demo

campaign_uuid=5d4c1e2a-0000-4000-8000-00000000ca01
alice_uuid=5d4c1e2a-0000-4000-8000-0000000a1ce0
bob_uuid=5d4c1e2a-0000-4000-8000-000000000b0b
carol_uuid=5d4c1e2a-0000-4000-8000-0000000ca201

problems=0
unexpected() { printf '%s: UNEXPECTED: %s\n' "$me" "$*" >&2; problems=$((problems + 1)); }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

# --- tools -----------------------------------------------------------------------
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing missing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -f "$config" ] || die "$config is missing"
[ -d "$secrets" ] || die "$secrets is missing"
mkdir -p "$demo_dir"

pretty() {
    if command -v jq >/dev/null 2>&1; then jq .
    elif command -v python3 >/dev/null 2>&1; then python3 -m json.tool
    else cat; echo; fi
}

# --- (a) build ---------------------------------------------------------------------
step "(a) building the worker: cargo build --release -p bounce-worker"
cargo build --release -p bounce-worker
[ -x "$bin" ] || die "$bin not found after the build"

# --- (b) database ------------------------------------------------------------------
step "(b) database"
if [ -n "${DATABASE_URL:-}" ]; then
    log "using the server of DATABASE_URL"
    server_url="$DATABASE_URL"
else
    server_url="$(bash scripts/pg-ensure.sh)"
    server_url="${server_url##*$'\n'}"
fi

# Same server, other database: replace the path of the URL, keep its query.
with_db() {
    local url="$1" db="$2" nq query rest
    nq="${url%%\?*}"; query="${url#"$nq"}"
    rest="${nq#*://}"
    printf '%s://%s/%s%s\n' "${nq%%://*}" "${rest%%/*}" "$db" "$query"
}

log "recreating database $db_name"
psql "$server_url" -X -q -v ON_ERROR_STOP=1 \
    -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" \
    -c "CREATE DATABASE $db_name"
DATABASE_URL="$(with_db "$server_url" "$db_name")"
export DATABASE_URL
log "DATABASE_URL now points at $db_name"
sql() { psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }

# --- (c) migrations ----------------------------------------------------------------
step "(c) migrations: bounce-worker migrate --standalone"
"$bin" migrate --config "$config" --secrets-dir "$secrets" --standalone

# --- (d) seed ------------------------------------------------------------------------
step "(d) seeding a list, three subscribers and a campaign"
sql <<SQL
INSERT INTO lists (uuid, name, type, optin)
VALUES (gen_random_uuid(), 'Demo newsletter', 'public', 'single');
INSERT INTO subscribers (uuid, email, name, status) VALUES
    ('$alice_uuid', 'alice@example.com', 'Alice', 'enabled'),
    ('$bob_uuid',   'bob@example.com',   'Bob',   'enabled'),
    ('$carol_uuid', 'carol@example.com', 'Carol', 'enabled');
INSERT INTO subscriber_lists (subscriber_id, list_id, status)
SELECT s.id, l.id, 'confirmed'
FROM subscribers s CROSS JOIN lists l
WHERE l.name = 'Demo newsletter';
INSERT INTO campaigns (uuid, name, subject, from_email, body, messenger)
VALUES ('$campaign_uuid', 'November issue', 'Hello', 'news@example.com', 'body', 'email');
SQL
sql -c "SELECT id, uuid, email, status FROM subscribers ORDER BY id"

# --- (e) start the worker ------------------------------------------------------------
step "(e) starting the worker on 127.0.0.1:$port (log: $worker_log)"
if curl -s -o /dev/null --max-time 2 "$base/"; then
    die "something already listens on 127.0.0.1:$port; set BOUNCEOPS_DEMO_PORT"
fi
worker_pid=""
cleanup() {
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        log "stopping the worker (pid $worker_pid)"
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$bin" run --config "$config" --secrets-dir "$secrets" --listen "127.0.0.1:$port" \
    >"$worker_log" 2>&1 &
worker_pid=$!
log "worker pid $worker_pid; waiting for GET /readyz = 200"
ready=""
for i in $(seq 1 60); do
    if ! kill -0 "$worker_pid" 2>/dev/null; then
        tail -n 30 "$worker_log" >&2 || true
        die "the worker exited during start-up (see $worker_log)"
    fi
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/readyz" || true)"
    if [ "$code" = 200 ]; then ready=1; break; fi
    [ $((i % 10)) -eq 0 ] && log "still waiting ($((i / 2))s, last /readyz: ${code:-none})"
    sleep 0.5
done
if [ -z "$ready" ]; then
    tail -n 30 "$worker_log" >&2 || true
    die "/readyz did not return 200 within 30s (see $worker_log)"
fi
log "ready"

# --- (f) bounces -----------------------------------------------------------------------
step "(f) posting sample bounces to POST /webhooks/bounce"
post() {
    local what="$1" expect="$2" body="$3" out code
    out="$(mktemp)"
    code="$(curl -s -o "$out" -w '%{http_code}' --max-time 10 \
        -H "$auth" -H 'Content-Type: application/json' \
        --data-binary "$body" "$base/webhooks/bounce" || true)"
    printf '%s: %-44s -> HTTP %s %s\n' "$me" "$what" "${code:-none}" "$(tr -d '\n' <"$out")"
    rm -f "$out"
    [ "$code" = "$expect" ] || unexpected "$what: HTTP ${code:-none}, expected $expect"
}
post "hard bounce, alice (by email, with campaign)" 200 \
    "{\"email\": \"alice@example.com\", \"campaign_uuid\": \"$campaign_uuid\", \"type\": \"hard\", \"source\": \"demo\", \"meta\": {\"diagnostic\": \"550 5.1.1 user unknown\"}}"
post "soft bounce 1/2, bob" 200 \
    "{\"email\": \"Bob@Example.com\", \"campaign_uuid\": \"$campaign_uuid\", \"type\": \"soft\", \"source\": \"demo\", \"meta\": {\"diagnostic\": \"452 4.2.2 mailbox full\"}}"
post "soft bounce 2/2, bob" 200 \
    "{\"email\": \"bob@example.com\", \"campaign_uuid\": \"$campaign_uuid\", \"type\": \"soft\", \"source\": \"demo\"}"
post "complaint, carol (by subscriber_uuid)" 200 \
    "{\"subscriber_uuid\": \"$carol_uuid\", \"campaign_uuid\": \"$campaign_uuid\", \"type\": \"complaint\", \"source\": \"demo\"}"
post "hard bounce, unknown address" 200 \
    "{\"email\": \"nobody@example.com\", \"type\": \"hard\", \"source\": \"demo\"}"
post "malformed body" 400 \
    '{"email": "alice@example.com", "type": '

# --- (g) results -------------------------------------------------------------------------
step "(g) GET /api/bounces?per_page=all"
curl -sS --fail-with-body -H "$auth" "$base/api/bounces?per_page=all" | pretty \
    || unexpected "GET /api/bounces failed"

step "(g) GET /api/bounces/export?format=csv"
curl -sS --fail-with-body -H "$auth" "$base/api/bounces/export?format=csv" \
    || unexpected "GET /api/bounces/export failed"
echo

step "(g) subscribers after the bounces (soft rule: 2 -> none, hard and complaint: 1 -> blocklist)"
sql -c "SELECT s.email, s.status, count(b.id) AS bounces
        FROM subscribers s LEFT JOIN bounces b ON b.subscriber_id = s.id
        GROUP BY s.id ORDER BY s.id"
statuses="$(sql -A -t -F ' ' -c "SELECT email, status FROM subscribers ORDER BY id")"
expected_statuses="alice@example.com blocklisted
bob@example.com enabled
carol@example.com blocklisted"
[ "$statuses" = "$expected_statuses" ] \
    || unexpected "subscriber statuses are [$statuses], expected [$expected_statuses]"

step "(g) GET /metrics (bounceops_ lines, histogram buckets left out)"
metrics="$(curl -sS --fail-with-body "$base/metrics" || true)"
if grep '^bounceops_' <<<"$metrics" | grep -v '_bucket{'; then :; else unexpected "no bounceops_ metrics"; fi

# --- (h) stop ----------------------------------------------------------------------------
step "(h) stopping the worker (SIGTERM)"
kill -TERM "$worker_pid"
stopped=""
for _ in $(seq 1 40); do
    kill -0 "$worker_pid" 2>/dev/null || { stopped=1; break; }
    sleep 0.5
done
if [ -z "$stopped" ]; then
    unexpected "the worker did not exit within 20s of SIGTERM; killing it"
    kill -KILL "$worker_pid" 2>/dev/null || true
fi
rc=0
wait "$worker_pid" || rc=$?
worker_pid=""
[ "$rc" -eq 0 ] || unexpected "the worker exited with status $rc after SIGTERM"
log "worker stopped (exit status $rc); its log is in $worker_log"

if [ "$problems" -gt 0 ]; then
    die "$problems unexpected result(s), see above"
fi
log "done: database $db_name is kept for inspection: psql '$(printf '%s' "$DATABASE_URL" | sed -E 's#(//[^:/@]*):[^@/]*@#\1:***@#')'"
