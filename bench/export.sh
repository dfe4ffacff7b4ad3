#!/usr/bin/env bash
# Export benchmark (issue 2): 1,000,000 bounces as CSV through GET /api/bounces/export,
# against `psql \copy (the same query) to stdout csv`, with the worker's peak RSS. The
# export runs twice: as served by default (formula-like cells neutralised) and with
# raw=true, which must be byte-identical to psql's output; the script exits 1 if it is not.
# Usage: bash bench/export.sh [rows]; BENCH_SMOKE=1 bash bench/export.sh (2,000 rows, debug)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rows="${1:-1000000}"
[ "$smoke" = 1 ] && rows="${1:-2000}"
port="${BENCH_PORT:-9312}"

bench_build -p bounce-worker --bin bounce-worker --example export_query
bench_database bounceops_bench_export
log "seeding $rows bounces over 10,000 subscribers"
psql "$DATABASE_URL" -qX <<SQL
INSERT INTO subscribers (uuid, email, name)
  SELECT gen_random_uuid(), 'user' || i || '@bench.test', 'User ' || i FROM generate_series(1, 10000) i;
INSERT INTO campaigns (uuid, name, subject, from_email, body, messenger)
  VALUES (gen_random_uuid(), 'Bench, "quoted"', 's', 'f@bench.test', 'b', 'email');
INSERT INTO bounces (subscriber_id, campaign_id, type, source, meta, created_at)
  SELECT 1 + i % 10000, CASE WHEN i % 2 = 0 THEN 1 END, (ARRAY['soft','hard','complaint'])[1 + i % 3]::bounce_type,
         'bench', jsonb_build_object('reason', 'unknown_user', 'status', '5.1.1',
                                     'diagnostic', CASE WHEN i % 10 = 0 THEN '=' ELSE '' END
                                                   || '550 5.1.1 <user' || i || '>: no such user'),
         NOW() - make_interval(secs => i)
  FROM generate_series(1, $rows) i;
VACUUM ANALYZE;
SQL
# The worker's own query (worker/src/store/export.rs, csv_query), as raw=true runs it.
query="$("$target/$profile/examples/export_query")"

now() { date +%s.%N; }
log "psql \\copy"
t0="$(now)"
psql "$DATABASE_URL" -qX -c "\\copy ($query) to stdout with (format csv, header true)" >"$bench_dir/psql.csv"
t1="$(now)"

start_worker "$port"
idle_kb="$(rss_kb "$worker_pid" VmRSS)"
log "GET /api/bounces/export?format=csv"
t2="$(now)"
curl -sf -H 'Authorization: token bench:bench-token' \
    "http://127.0.0.1:$port/api/bounces/export?format=csv" >"$bench_dir/ours.csv"
t3="$(now)"
log "GET /api/bounces/export?format=csv&raw=true"
t4="$(now)"
curl -sf -H 'Authorization: token bench:bench-token' \
    "http://127.0.0.1:$port/api/bounces/export?format=csv&raw=true" >"$bench_dir/raw.csv"
t5="$(now)"
peak_kb="$(rss_kb "$worker_pid" VmHWM)"
stop_worker

lines_psql="$(wc -l <"$bench_dir/psql.csv")"
lines_ours="$(wc -l <"$bench_dir/ours.csv")"
lines_raw="$(wc -l <"$bench_dir/raw.csv")"
python3 - "$rows" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$lines_psql" "$lines_ours" "$lines_raw" "$idle_kb" "$peak_kb" "$(stat -c %s "$bench_dir/ours.csv")" <<'PY'
import sys
rows = int(sys.argv[1]); t0, t1, t2, t3, t4, t5 = map(float, sys.argv[2:8])
psql, ours, raw = rows / (t1 - t0), rows / (t3 - t2), rows / (t5 - t4)
print("| run | seconds | rows/s | lines |")
print("|---|---|---|---|")
print(f"| psql \\copy (same query) to stdout csv | {t1-t0:.2f} | {psql:,.0f} | {sys.argv[8]} |")
print(f"| GET /api/bounces/export?format=csv (formula-like cells neutralised) | {t3-t2:.2f} | {ours:,.0f} | {sys.argv[9]} |")
print(f"| GET /api/bounces/export?format=csv&raw=true | {t5-t4:.2f} | {raw:,.0f} | {sys.argv[10]} |")
print()
print(f"ours/psql: {ours/psql:.2f} (raw=true: {raw/psql:.2f}); worker RSS idle {int(sys.argv[11])/1024:.1f} MiB, "
      f"peak during the exports {int(sys.argv[12])/1024:.1f} MiB; {int(sys.argv[13])/2**20:.0f} MiB of CSV")
PY
failed=0
if cmp -s "$bench_dir/psql.csv" "$bench_dir/raw.csv"; then
    log "raw=true and psql are byte-identical"
else
    log "FAILED: raw=true and psql differ"; failed=1
fi
neutralised="$(grep -c ",'=550 5.1.1 <user" "$bench_dir/ours.csv" || true)"
if [ "$lines_ours" = "$lines_psql" ] && [ "$neutralised" = "$((rows / 10))" ]; then
    log "the default export has every row, and $neutralised formula-like diagnostics neutralised"
else
    log "FAILED: the default export has $lines_ours lines (psql $lines_psql), $neutralised neutralised (want $((rows / 10)))"
    failed=1
fi
if [ "$lines_psql" != "$((rows + 1))" ]; then
    log "FAILED: psql gave $lines_psql lines for $rows rows and a header"; failed=1
fi
rm -rf "$bench_dir"
exit "$failed"
