#!/usr/bin/env bash
# Ingest benchmark (issue 2): POST /webhooks/bounce with 64 concurrent keep-alive clients,
# side by side in one run with the baseline (bench/baseline.pgbench: the same per-event
# work as one transaction per event, run by pgbench with 64 clients), then our latency at
# half of our peak rate (open loop). Usage: bash bench/ingest.sh [seconds]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
seconds="${1:-20}"
subscribers="${BENCH_SUBSCRIBERS:-200000}"
port="${BENCH_PORT:-9311}"

log "building (release)"
cargo build -q --release -p bounce-worker --example loadgen
loadgen="$target/release/examples/loadgen"

bench_database bounceops_bench_ingest
log "seeding $subscribers subscribers"
psql "$DATABASE_URL" -qX <<SQL
INSERT INTO lists (uuid, name, type) VALUES (gen_random_uuid(), 'bench', 'public');
INSERT INTO subscribers (uuid, email, name)
  SELECT gen_random_uuid(), 'user' || i || '@bench.test', 'User ' || i FROM generate_series(1, $subscribers) i;
INSERT INTO subscriber_lists (subscriber_id, list_id, status) SELECT id, 1, 'confirmed' FROM subscribers;
VACUUM ANALYZE;
SQL
reset_state() {
    psql "$DATABASE_URL" -qX -c "TRUNCATE bounces, bounceops.unmatched" \
        -c "UPDATE subscribers SET status = 'enabled' WHERE status <> 'enabled'" -c "CHECKPOINT" >/dev/null
}

log "baseline: pgbench, 64 clients, ${seconds}s"
reset_state
baseline="$(pgbench -n -M prepared -c 64 -j 2 -T "$seconds" -D subscribers="$subscribers" \
    -f bench/baseline.pgbench "$DATABASE_URL" 2>&1)"
base_tps="$(awk '/^tps = / {printf "%d", $3}' <<<"$baseline")"
base_lat="$(awk '/^latency average/ {print $4}' <<<"$baseline")"
base_rows="$(psql "$DATABASE_URL" -tAX -c 'SELECT COUNT(*) FROM bounces')"

log "ours: bounce-worker, 64 clients, ${seconds}s"
reset_state
start_worker "$port"
idle_kb="$(rss_kb "$worker_pid" VmRSS)"
peak="$("$loadgen" --url "http://127.0.0.1:$port/webhooks/bounce" --clients 64 \
    --seconds "$seconds" --subscribers "$subscribers")"
our_rows="$(psql "$DATABASE_URL" -tAX -c 'SELECT COUNT(*) FROM bounces')"
batches="$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^bounceops_ingest_batch_events_(sum|count)/ {print $2}' | paste -sd' ')"
peak_rate="$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["rate"]))' "$peak")"
half=$((peak_rate / 2))
log "ours: open loop at half of the peak ($half/s), ${seconds}s"
open="$("$loadgen" --url "http://127.0.0.1:$port/webhooks/bounce" --rate "$half" \
    --seconds "$seconds" --subscribers "$subscribers")"
busy_kb="$(rss_kb "$worker_pid" VmHWM)"
stop_worker

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
PY
