#!/usr/bin/env bash
# The bounce MX under load (issue 21), side by side in one run:
#   1. Postfix's smtp-source, 32 sessions, into Postfix's smtp-sink (accepts and discards:
#      this machine's SMTP ceiling);
#   2. the same smtp-source command into bounce-worker --role smtp (smtp-source sends one
#      message over and over, so after the first each is a retry of it: classified, its
#      identity claimed in a transaction, answered 250, not recorded again);
#   3. worker/examples/smtp_load.rs, 32 sessions, unique DSNs to signed VERP return paths of
#      100,000 subscribers, closed loop: the rate of bounces recorded;
#   4. the same at half that rate, open loop: DATA-to-250 latency, and the worker's peak RSS.
# Exits 1, saying which, when a message was refused or answered anything but recorded
# (bounceops_smtp_messages_total's other outcomes), when the worker's count of recorded
# messages is not what the clients were answered 250 for, when no bounce row was added, or
# when a figure is missing.
# Usage: bash bench/smtp.sh [seconds per run, 20] (needs postfix: scripts/ensure-postfix.sh)
# Smoke mode: BENCH_SMOKE=1 bash bench/smtp.sh (the debug build, 2 s per run, 2,000
# subscribers, 8 sessions, smtp-source 500 messages).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
seconds="${1:-20}"
sessions=32
messages="${BENCH_SOURCE_MESSAGES:-20000}"
subscribers=100000
if [ "$smoke" = 1 ]; then
    seconds="${1:-2}" sessions=8 messages="${BENCH_SOURCE_MESSAGES:-500}" subscribers=2000
fi
port="${BENCH_PORT:-9331}" smtp_port="${BENCH_SMTP_PORT:-9332}" sink_port="${BENCH_SINK_PORT:-9333}"
need_postfix_tools

bench_build -p bounce-worker --bin bounce-worker --example smtp_load
load="$target/$profile/examples/smtp_load"

export BENCH_EXTRA_SPEC="smtp: {domains: [bounces.bench.test], verpKeySecretRef: {name: verp, key: key}, maxSessions: 128}"
bench_database bounceops_bench_smtp
bench_verp_key
worker_pid="" sink_pid=""
trap '[ -z "$worker_pid" ] || stop_worker; [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null; rm -rf "$bench_dir"' EXIT
psql "$DATABASE_URL" -qX -c "INSERT INTO subscribers (uuid, email, name)
    SELECT gen_random_uuid(), 'user' || g || '@bench.test', 'u' FROM generate_series(1, $subscribers) g" >&2
psql "$DATABASE_URL" -AtX -c "SELECT uuid FROM subscribers" >"$bench_dir/uuids"

start_worker "$port" --role smtp --smtp-listen "127.0.0.1:$smtp_port"

idle="$(rss_kb "$worker_pid" VmRSS)"

# The message smtp-source sends: a DSN to a VERP return path.
first="$(head -1 "$bench_dir/uuids")"
rcpt="$("$worker_bin" verp encode --key-file "$bench_dir/secrets/verp/key" --subscriber "$first" --domain bounces.bench.test)"
cat >"$bench_dir/dsn.eml" <<EML
From: MAILER-DAEMON@mx.bench.test (Mail Delivery System)
To: $rcpt
Subject: Undelivered Mail Returned to Sender
Message-Id: <smtp-source@mx.bench.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.bench.test

Final-Recipient: rfc822; user@elsewhere.test
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--B--
EML

envelope=(-f "" -t "$rcpt" -F "$bench_dir/dsn.eml")
smtp-sink -u postfix "127.0.0.1:$sink_port" 256 &
sink_pid=$!
wait_for_port "$sink_port"
sink="$(source_rate "127.0.0.1:$sink_port" "${envelope[@]}")"
kill "$sink_pid"; sink_pid=""
log "smtp-source → smtp-sink: $sink messages/s"
ours_source="$(source_rate "127.0.0.1:$smtp_port" "${envelope[@]}")"
log "smtp-source → bounce-worker (one message, repeated): $ours_source messages/s"

psql "$DATABASE_URL" -qX -c "CHECKPOINT" >&2
before="$(psql "$DATABASE_URL" -AtX -c "SELECT COUNT(*) FROM bounces")"
closed="$("$load" --addr "127.0.0.1:$smtp_port" --key-file "$bench_dir/secrets/verp/key" \
    --uuids "$bench_dir/uuids" --domain bounces.bench.test --sessions "$sessions" --seconds "$seconds")"
after="$(psql "$DATABASE_URL" -AtX -c "SELECT COUNT(*) FROM bounces")"
log "smtp_load, closed loop: $closed; bounce rows +$((after - before))"
peak="$(sed -E 's/.*"rate":([0-9.]+).*/\1/' <<<"$closed")"
half="$(bc -l <<<"scale=0; $peak / 2")"
open="$("$load" --addr "127.0.0.1:$smtp_port" --key-file "$bench_dir/secrets/verp/key" \
    --uuids "$bench_dir/uuids" --domain bounces.bench.test --sessions "$sessions" --seconds "$seconds" --rate "$half")"
log "smtp_load, open loop at $half/s: $open"
hwm="$(rss_kb "$worker_pid" VmHWM)"
metrics="$(curl -s "http://127.0.0.1:$port/metrics")"
grep -E '^bounceops_smtp_messages_total|^bounceops_smtp_data_duration_seconds_(sum|count)' <<<"$metrics" >&2
printf '%s\n' "smtp-sink (smtp-source, $sessions sessions): $sink msg/s" \
    "bounce-worker (smtp-source, same message): $ours_source msg/s" \
    "bounce-worker (smtp_load, unique DSNs, closed): $closed" \
    "bounce-worker (smtp_load, open at half peak): $open" \
    "recorded-rate / smtp-sink: $(bc -l <<<"scale=3; $peak / $sink")" \
    "worker RSS: idle $(bc -l <<<"scale=1; $idle / 1024") MiB, peak $(bc -l <<<"scale=1; $hwm / 1024") MiB"

python3 - "$messages" "$closed" "$open" "$((after - before))" "$sink" "$ours_source" "$metrics" <<'PY'
import json, re, sys
messages, closed, open_, rows = int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
outcomes = {m[1]: float(m[2]) for m in
            re.finditer(r'^bounceops_smtp_messages_total\{outcome="([a-z_]+)"\} (\S+)$', sys.argv[7], re.M)}
answered = messages + closed["ok"] + open_["ok"]
failed = [what for what, bad in [
    ("a rate is missing", not sys.argv[5].isdigit() or not sys.argv[6].isdigit()),
    (f"smtp_load had refusals (closed {closed['refused']}, open {open_['refused']})",
     closed["refused"] + open_["refused"] > 0),
    ("smtp_load got no 250 in a run", closed["ok"] == 0 or open_["ok"] == 0),
    ("no bounce row was added by the closed loop", rows <= 0),
    ("bounceops_smtp_messages_total is missing", "recorded" not in outcomes),
    (f"the worker recorded {outcomes.get('recorded', 0):.0f} messages, the clients were answered 250 for {answered}",
     outcomes.get("recorded", 0) != answered),
] + [(f"{n:.0f} messages had the outcome {o}", n > 0) for o, n in outcomes.items() if o != "recorded"] if bad]
if failed:
    print("bench: FAILED: " + "; ".join(failed), file=sys.stderr)
    sys.exit(1)
print("bench: every message recorded, none refused", file=sys.stderr)
PY
