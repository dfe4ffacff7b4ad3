#!/usr/bin/env bash
# Ingest benchmark (issue 2): POST /webhooks/bounce with 64 concurrent keep-alive clients
# (wrk, a C load generator, as pgbench is one), side by side in one run with the baseline
# (bench/baseline.pgbench: the same per-event work as one transaction per event, run by
# pgbench with 64 clients), then our latency at half of our peak rate (open loop, the
# loadgen example). Exits 1 when a run had errors or recorded nothing, or a figure is
# missing. Usage: bash bench/ingest.sh [seconds]; BENCH_SMOKE=1 bash bench/ingest.sh (2 s,
# 2,000 subscribers, the debug build).
# BENCH_PRELOAD=N (issue 24): before the runs, N rows already in `bounces`,
# `bounceops.processed_events` and `bounceops.evidence` (spread over their retention windows,
# for 50 bounces each of N/50 other subscribers, so the per-event work is the same as on
# empty tables), and afterwards the database time of purging the oldest day of evidence
# (EXPLAIN ANALYZE, rolled back) and of the worker's rotation of the event ids, which
# forgets the older half of them (committed: it is the last thing the run does).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
seconds="${1:-20}"
subscribers="${BENCH_SUBSCRIBERS:-200000}"
if [ "$smoke" = 1 ]; then
    seconds="${1:-2}"
    subscribers="${BENCH_SUBSCRIBERS:-2000}"
fi
port="${BENCH_PORT:-9311}"
preload="${BENCH_PRELOAD:-0}"

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
bench_build -p bounce-worker --bin bounce-worker --example loadgen
loadgen="$target/$profile/examples/loadgen"

bench_database bounceops_bench_ingest
command -v pgbench >/dev/null || { log "pgbench is missing (Debian: the postgresql package)"; exit 1; }
log "seeding $subscribers subscribers"
psql "$DATABASE_URL" -qX <<SQL
INSERT INTO lists (uuid, name, type) VALUES (gen_random_uuid(), 'bench', 'public');
INSERT INTO subscribers (uuid, email, name)
  SELECT gen_random_uuid(), 'user' || i || '@bench.test', 'User ' || i FROM generate_series(1, $subscribers) i;
INSERT INTO subscriber_lists (subscriber_id, list_id, status) SELECT id, 1, 'confirmed' FROM subscribers;
VACUUM ANALYZE;
SQL
if [ "$preload" -gt 0 ]; then
    log "preloading $preload rows into bounces, processed_events and evidence"
    psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 <<SQL
INSERT INTO subscribers (uuid, email, name)
  SELECT gen_random_uuid(), 'old' || i || '@preload.test', 'Old ' || i
  FROM generate_series(1, GREATEST($preload / 50, 1)) i;
INSERT INTO bounces (subscriber_id, type, source, meta, created_at)
  SELECT o.first + i % o.n, (CASE WHEN i % 10 < 3 THEN 'hard' ELSE 'soft' END)::bounce_type,
         'preload', '{}', NOW() - interval '1 hour' - (i % (29 * 86400)) * interval '1 second'
  FROM generate_series(1, $preload) i,
       (SELECT MIN(id) AS first, COUNT(*) AS n FROM subscribers WHERE email LIKE '%@preload.test') o;
INSERT INTO bounceops.evidence (bounce_id, content_type, gzip, original_bytes, created_at)
  SELECT id, 'application/json', convert_to(repeat(md5(id::text), 8), 'UTF8'), 256, created_at
  FROM bounces WHERE source = 'preload';
-- The ids in both halves (worker/migrations/0008_event_id_halves.sql), as a worker three
-- days into its current half finds them: the previous half took claims for the 3 days
-- before.
INSERT INTO bounceops.processed_events (source, event_id, received_at, half)
  SELECT 'preload', 'p' || i, at, CASE WHEN at > NOW() - interval '3 days' THEN 0 ELSE 1 END
  FROM (SELECT i, NOW() - interval '1 hour' - (i % (6 * 86400)) * interval '1 second' AS at
        FROM generate_series(1, $preload) i) ids;
UPDATE bounceops.processed_events_current
   SET half = 0, since = NOW() - interval '3 days', previous_since = NOW() - interval '6 days';
VACUUM ANALYZE;
SQL
fi
# Each run starts from the same state: this run's rows gone (the preload stays), statuses reset,
# and the dead rows of both vacuumed away. `subscribers` is among them: a run blocklists tens of
# thousands of subscribers and the reset enables them again, none of it a HOT update (listmonk
# indexes `status`), so a run would otherwise start with some 60,000 dead rows and their index
# entries left by the run before, which autovacuum then cleans up in the middle of it.
reset_state() {
    psql "$DATABASE_URL" -qX -c "DELETE FROM bounceops.evidence WHERE bounce_id IN (SELECT id FROM bounces WHERE source <> 'preload')" \
        -c "DELETE FROM bounces WHERE source <> 'preload'" -c "TRUNCATE bounceops.unmatched" \
        -c "UPDATE subscribers SET status = 'enabled' WHERE status <> 'enabled'" \
        -c "VACUUM ANALYZE bounces, bounceops.evidence, subscribers" -c "CHECKPOINT" >/dev/null
}

log "baseline: pgbench, 64 clients, ${seconds}s"
reset_state
baseline="$(pgbench -n -M prepared -c 64 -j 2 -T "$seconds" -D subscribers="$subscribers" \
    -f bench/baseline.pgbench "$DATABASE_URL" 2>&1)"
base_tps="$(awk '/^tps = / {printf "%d", $3}' <<<"$baseline")"
base_lat="$(awk '/^latency average/ {print $4}' <<<"$baseline")"
base_rows="$(psql "$DATABASE_URL" -tAX -c "SELECT COUNT(*) FROM bounces WHERE source <> 'preload'")"

log "ours: bounce-worker, 64 clients, ${seconds}s"
reset_state
start_worker "$port"
idle_kb="$(rss_kb "$worker_pid" VmRSS)"
wrk_out="$(BENCH_SUBSCRIBERS="$subscribers" wrk -t2 -c64 -d"${seconds}s" --latency \
    -s bench/wrk-bounce.lua "http://127.0.0.1:$port")"
peak="$(python3 - "$wrk_out" <<'PY'
import json, re, sys
out = sys.argv[1]
def ms(label):
    m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    return round(float(m[1]) * {"us": 0.001, "ms": 1, "s": 1000}[m[2]], 3)
rate = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)[1])
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
errors = int(bad[1]) if bad else 0
errors += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
print(json.dumps({"rate": round(rate), "p50_ms": ms("50%"), "p99_ms": ms("99%"), "errors": errors}))
PY
)"
our_rows="$(psql "$DATABASE_URL" -tAX -c "SELECT COUNT(*) FROM bounces WHERE source <> 'preload'")"
batches="$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^bounceops_ingest_batch_events_(sum|count)/ {print $2}' | paste -sd' ')"
peak_rate="$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["rate"]))' "$peak")"
half=$((peak_rate / 2))
log "ours: open loop at half of the peak ($half/s), ${seconds}s"
open="$("$loadgen" --url "http://127.0.0.1:$port/webhooks/bounce" --rate "$half" \
    --seconds "$seconds" --subscribers "$subscribers")"
busy_kb="$(rss_kb "$worker_pid" VmHWM)"
stop_worker
if [ "$preload" -gt 0 ]; then
    # The worker's purges (store/record.rs, store/evidence.rs) over the oldest day of each
    # table, as one statement each, and one pass of the evidence's orphan sweep (a span of
    # 200,000 rows, store::evidence::SWEEP_SPAN; it finds none here: its cost is the look).
    # $2, when given, runs first in the same transaction (a PREPARE).
    purge_ms() {
        psql "$DATABASE_URL" -qtAX -c "BEGIN" ${2:+-c "$2"} -c "EXPLAIN (ANALYZE, FORMAT JSON) $1" -c "ROLLBACK" \
            | python3 -c 'import json,sys; print(round(json.loads(sys.stdin.read())[0]["Execution Time"]))'
    }
    evidence_ms="$(purge_ms "DELETE FROM bounceops.evidence WHERE created_at < NOW() - interval '28 days'")"
    # The sweep's own file, over the first span; a prepared statement's first execution is
    # planned for its parameters, as the worker has every execution planned.
    orphans_ms="$(purge_ms "EXECUTE sweep(0, 200000)" \
        "PREPARE sweep(int, bigint) AS $(cat worker/sql/evidence_sweep.sql)")"
    # The rotation as the worker calls it (store/record.rs, with its 1 s lock wait), due at
    # once, timed by the client: its time on the server and one round trip on loopback.
    forgotten="$(psql "$DATABASE_URL" -qtAX -c "SELECT COUNT(*) FROM bounceops.processed_events WHERE half = 1")"
    ids_ms="$(psql "$DATABASE_URL" -qtAX -c '\timing on' -c "SELECT bounceops.rotate_claims(0, 1)" \
        | awk '/^Time: / {printf "%d", $2 + 0.5}')"
    [ -n "$ids_ms" ] || { log "FAILED: the rotation of the event ids gave no time"; exit 1; }
    log "purge of the oldest day of evidence $evidence_ms ms; orphan sweep $orphans_ms ms (database time); rotation of the event ids forgetting $forgotten $ids_ms ms"
    echo "preload $preload rows: purge of the oldest day of evidence $evidence_ms ms; one orphan sweep $orphans_ms ms (database time); the ids' rotation, forgetting $forgotten ids, $ids_ms ms"
fi

python3 - "$base_tps" "$base_lat" "$base_rows" "$peak" "$our_rows" "$open" "$batches" "$idle_kb" "$busy_kb" <<'PY'
import json, sys
base_tps, base_lat, base_rows = float(sys.argv[1]), sys.argv[2], sys.argv[3]
peak, our_rows, open_ = json.loads(sys.argv[4]), sys.argv[5], json.loads(sys.argv[6])
s, c = (float(x) for x in sys.argv[7].split())
print(f"| run | events/s | latency | bounce rows |")
print(f"|---|---|---|---|")
print(f"| baseline (pgbench, 1 txn/event, 64 clients) | {base_tps:.0f} | avg {base_lat} ms | {base_rows} |")
print(f"| bounce-worker, 64 clients (closed loop) | {peak['rate']:.0f} | p50 {peak['p50_ms']} ms, p99 {peak['p99_ms']} ms | {our_rows} |")
print(f"| bounce-worker at half peak ({open_['rate']:.0f}/s, open loop) | {open_['rate']:.0f} | p50 {open_['p50_ms']} ms, p99 {open_['p99_ms']} ms | |")
print()
print(f"ratio ours/baseline: {peak['rate']/base_tps:.2f}x; errors: {peak['errors']} + {open_['errors']}; "
      f"mean events per transaction at peak: {s/c:.1f}; worker RSS idle {int(sys.argv[8])//1024} MiB, peak {int(sys.argv[9])//1024} MiB")
failed = [what for what, bad in [
    ("the worker answered errors", peak["errors"] + open_["errors"] > 0),
    ("the worker recorded no bounce", int(our_rows) == 0),
    ("pgbench recorded no bounce", int(base_rows) == 0),
    ("pgbench gave no rate", base_tps <= 0),
] if bad]
if failed:
    print("bench: FAILED: " + "; ".join(failed), file=sys.stderr)
    sys.exit(1)
PY
