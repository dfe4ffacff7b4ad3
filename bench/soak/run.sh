#!/usr/bin/env bash
# Exactly-once soak (issue 12, point 5): 16 clients post generic-webhook bounces to a worker
# for SECONDS (default 600) and retry each until it is answered 2xx, while this script
#   - restarts Postgres (pg_ctl restart -m fast) every minute, 15 s in,
#   - stops Postgres for 3 s every minute, 40 s in,
#   - SIGKILLs the worker 3 times (at 20%, 50% and 80% of the run, 25 s into that minute)
#     and starts it again at once, as the kubelet would,
#   - rotates the halves of the event ids every minute, 50 s in (`bounceops.rotate_claims`
#     as the workers call it weekly, here with nothing kept past the next rotation but one:
#     ids are remembered 60 to 120 s, far longer than any retry of the senders takes), so
#     that claims meet rotations under load and faults.
# Then it prints what the senders saw and what the database holds, as one JSON object:
# sent, answered_2xx, lost (answered but not stored), doubled (stored twice), unanswered.
#
# Postgres here is a cluster of its own (initdb in a temporary directory, 127.0.0.1:25432),
# so that restarting it disturbs nothing else on the machine. Its port is below Linux's
# ephemeral range (32768-60999): a port in it can be held at any moment as the local end of
# some client's connection, and a restart then cannot listen on it (it happened once, on
# 55432, in a CI run).
#
# Usage: bash bench/soak/run.sh [SECONDS] [--no-keys]
#   --no-keys: senders send no Idempotency-Key (a retry is a new request, as listmonk-style
#   senders do); by default each bounce carries one.
# Exits 1, saying which, when a bounce answered 2xx was not stored (lost), one was still
# unanswered after the drain, a bounce was stored twice while the senders sent keys, or a
# fault of the schedule did not happen.
# Smoke mode: BENCH_SMOKE=1 bash bench/soak/run.sh [SECONDS] [--no-keys]: the debug build,
# 30 s, the schedule's "minute" 10 s long (a restart 3 s in, a 3 s stop 7 s in, a rotation 9 s
# in, the kills 5 s into theirs): every kind of fault, each at least twice.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
seconds="${1:-600}"
keys="--idempotency-keys"
[ "${2:-}" = "--no-keys" ] && keys=""
# The fault schedule's period and each fault's offset in it, in seconds.
period=60 at_restart=15 at_stop=40 at_kill=25 at_rotate=50
if [ "$smoke" = 1 ]; then
    seconds="${1:-30}" period=10 at_restart=3 at_stop=7 at_kill=5 at_rotate=9
fi
port="${SOAK_PORT:-9321}"
pg_port="${SOAK_PG_PORT:-25432}"

pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pg_bin/pg_ctl" ] || { log "no PostgreSQL server binaries under /usr/lib/postgresql"; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

bench_build -p bounce-worker --bin bounce-worker --example soak

work="$(mktemp -d)"
chmod 755 "$work"
pgdata="$work/pgdata"
mkdir -p "$pgdata"
[ "$(id -u)" -eq 0 ] && chown postgres "$pgdata"
pg() { as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w "$@" >/dev/null; }
cleanup() {
    [ -n "${worker_pid:-}" ] && kill -KILL "$worker_pid" 2>/dev/null || true
    pg stop -m immediate 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
log "starting a Postgres of its own on 127.0.0.1:$pg_port"
as_pg "$pg_bin/initdb" -D "$pgdata" -U postgres --auth=trust >/dev/null
pg start -o "-p $pg_port -k $pgdata -c listen_addresses=127.0.0.1" || { cat "$pgdata/server.log" >&2; exit 1; }
db_url="postgres://postgres@127.0.0.1:$pg_port/postgres"

mkdir -p "$work/secrets/db" "$work/secrets/api"
printf '%s\n' "$db_url" >"$work/secrets/db/url"
printf 'bench:bench-token\n' >"$work/secrets/api/credentials"
# Every soft bounce is stored (recordAfterThreshold), so each one can be counted.
cat >"$work/config.yaml" <<YAML
database: {urlSecretRef: {name: db, key: url}, schema: standalone, maxConnections: 8}
api: {credentialsSecretRef: {name: api, key: credentials}}
rules:
  soft: {count: 1000, action: none}
  recordAfterThreshold: true
YAML
"$worker_bin" migrate --config "$work/config.yaml" --secrets-dir "$work/secrets" 2>"$work/migrate.log" || { cat "$work/migrate.log" >&2; exit 1; }
psql "$db_url" -qX <<SQL
INSERT INTO lists (uuid, name, type) VALUES (gen_random_uuid(), 'soak', 'public');
INSERT INTO subscribers (uuid, email, name)
  SELECT gen_random_uuid(), 'user' || i || '@soak.test', 'User ' || i FROM generate_series(1, 1000) i;
INSERT INTO subscriber_lists (subscriber_id, list_id, status) SELECT id, 1, 'confirmed' FROM subscribers;
SQL

start() {
    "$worker_bin" run --config "$work/config.yaml" --secrets-dir "$work/secrets" \
        --listen "127.0.0.1:$port" 2>>"$work/worker.log" &
    worker_pid=$!
}
start

"$target/$profile/examples/soak" --url "http://127.0.0.1:$port/webhooks/bounce" \
    --database-url "$db_url" --seconds "$seconds" $keys >"$work/result.json" &
senders=$!

# The fault schedule: "second kind" lines, in order.
{
    for ((m = 0; m * period < seconds; m++)); do
        echo "$((m * period + at_restart)) pg-restart"
        echo "$((m * period + at_stop)) pg-stop-3s"
        echo "$((m * period + at_rotate)) ids-rotation"
    done
    for pct in 20 50 80; do
        echo "$((seconds * pct / 100 / period * period + at_kill)) worker-kill"
    done
} | sort -n >"$work/schedule"
began=$(date +%s)
restarts=0 stops=0 kills=0 rotations=0
# A rotation gives up when a lock is not granted within its wait (1 s, as the workers'), as
# it may under this load; the workers would try again 10 minutes later, this script at once.
rotate() {
    local attempt
    for attempt in 1 2 3 4 5; do
        psql "$db_url" -qtAX -c "SELECT bounceops.rotate_claims(0, 1)" >/dev/null 2>>"$work/rotations.log" && return 0
    done
    return 1
}
while read -r at kind; do
    [ "$at" -lt "$seconds" ] || continue
    now=$(($(date +%s) - began))
    [ "$at" -gt "$now" ] && sleep $((at - now))
    case "$kind" in
        pg-restart) pg restart -m fast -o "-p $pg_port -k $pgdata -c listen_addresses=127.0.0.1"; restarts=$((restarts + 1)) ;;
        pg-stop-3s) pg stop -m fast; sleep 3; pg start -o "-p $pg_port -k $pgdata -c listen_addresses=127.0.0.1"; stops=$((stops + 1)) ;;
        worker-kill) kill -KILL "$worker_pid"; wait "$worker_pid" 2>/dev/null || true; start; kills=$((kills + 1)) ;;
        ids-rotation) if rotate; then rotations=$((rotations + 1)); else log "a rotation failed 5 times: $(tail -n 1 "$work/rotations.log")"; fi ;;
    esac
    log "t=${at}s $kind"
done <"$work/schedule"

wait "$senders"
log "faults: $restarts Postgres restarts, $stops 3-second stops, $kills worker SIGKILLs, $rotations rotations of the event ids"
planned="$(awk -v s="$seconds" '$1 < s {print $2}' "$work/schedule" | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')"
python3 - "$work/result.json" "$restarts" "$stops" "$kills" "$planned" "$keys" "$rotations" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["faults"] = {"pg_restarts": int(sys.argv[2]), "pg_stops_3s": int(sys.argv[3]), "worker_sigkills": int(sys.argv[4]),
               "ids_rotations": int(sys.argv[7])}
print(json.dumps(r, indent=1))
planned = dict(kv.split("=") for kv in sys.argv[5].split())
done = {"pg-restart": r["faults"]["pg_restarts"], "pg-stop-3s": r["faults"]["pg_stops_3s"],
        "worker-kill": r["faults"]["worker_sigkills"], "ids-rotation": r["faults"]["ids_rotations"]}
keys = sys.argv[6] != ""
failed = [what for what, bad in [
    ("nothing was sent", r["sent"] == 0),
    (f"{r['lost']} bounces answered 2xx were not stored", r["lost"] != 0),
    (f"{r['unanswered']} bounces were still unanswered after the drain", r["unanswered"] != 0),
    (f"{r['doubled']} bounces were stored twice although each carried an Idempotency-Key",
     keys and r["doubled"] != 0),
] + [(f"{kind}: {done[kind]} done of {n} planned", done[kind] != int(n) or int(n) == 0)
     for kind, n in planned.items()] if bad]
if failed:
    print("bench: FAILED: " + "; ".join(failed), file=sys.stderr)
    sys.exit(1)
print("bench: every bounce answered 2xx stored" + (", none twice" if keys else ""), file=sys.stderr)
PY
