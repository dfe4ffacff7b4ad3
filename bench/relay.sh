#!/usr/bin/env bash
# The sending relay under load (issue 22), side by side in one run, against Postfix's
# smtp-sink (accepts and discards: the upstream):
#   1. Postfix's smtp-source, 32 sessions (-d: several messages per session, as listmonk
#      sends them), 10 KB messages with listmonk's headers, straight
#      into smtp-sink: the baseline rate;
#   2. the same smtp-source command into bounce-worker --role relay, whose upstream is the same
#      smtp-sink: the relay's rate, and the ratio (goal: at least 90 % of the baseline);
#   3. worker/examples/smtp_latency.rs, one session, messages one after another, into each:
#      the per-message latency (MAIL to the answer after the final dot), p50 and p99, and what
#      the relay adds at p50 (goal: at most 2 ms);
#   4. steps 1 and 2 again with the relay on a core of its own (taskset: smtp-source and
#      smtp-sink on CPU 0 in both runs, the relay on CPU 1), as listmonk's sidecar has CPU
#      of its own in a pod: on a 2-core machine the unpinned ratio mostly says how much of
#      the shared CPU the relay takes from the load generator and the sink (BENCHMARKS.md);
#      skipped, saying so, on one core;
#   5. the relay's peak RSS (VmHWM) over all of it (goal: at most 64 MiB).
# Checks, in both modes: every message the relay took reached the sink (its metrics say
# relayed = sent, no upstream error); the goals are checked on a release build only.
# Smoke mode (BENCH_SMOKE=1, CI after the tests): the debug build and a few hundred messages;
# its figures mean nothing.
# Usage: bash bench/relay.sh [messages, 20000] (needs postfix: scripts/ensure-postfix.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
sessions=32
messages="${1:-20000}"
latency_messages=2000
if [ "$smoke" = 1 ]; then messages=320 latency_messages=50; fi
port="${BENCH_PORT:-9341}" relay_port="${BENCH_RELAY_PORT:-9342}" sink_port="${BENCH_SINK_PORT:-9343}"
need_postfix_tools

bench_build -p bounce-worker --bin bounce-worker --example smtp_latency
latency="$target/$profile/examples/smtp_latency"

export BENCH_EXTRA_SPEC="smtp: {domains: [bounces.bench.test], verpKeySecretRef: {name: verp, key: key}}
relay:
  returnPathDomain: bounces.bench.test
  replicas: 0
  maxSessions: 128
  upstream: {host: 127.0.0.1, port: $sink_port, tls: none, poolSize: $sessions, timeout: 30s}"
bench_database bounceops_bench_relay
bench_verp_key
worker_pid="" sink_pid=""
trap '[ -z "$worker_pid" ] || stop_worker; [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null; rm -rf "$bench_dir"' EXIT

# A 10 KB message as listmonk writes one: its headers, then text.
{
    printf 'From: News <news@bench.test>\nTo: <reader@bench.test>\nSubject: Our news\n'
    printf 'Message-Id: <bench@bench.test>\nX-Listmonk-Subscriber: 6c1a6d1e-2b8e-4c3c-9a53-6a2a4f0f9e11\n'
    printf 'X-Listmonk-Campaign: 0f7f4c39-2d0c-4d5e-8a43-2c0b1f2e3d4c\nMIME-Version: 1.0\n'
    printf 'Content-Type: text/plain; charset=utf-8\n\n'
    for i in $(seq 1 150); do printf '%04d The quick brown fox jumps over the lazy dog, again and again.\n' "$i"; done
} >"$bench_dir/message.eml"
size="$(wc -c <"$bench_dir/message.eml")"

smtp-sink -u postfix "127.0.0.1:$sink_port" 256 &
sink_pid=$!
start_worker "$port" --role relay --relay-listen "127.0.0.1:$relay_port"
relay_pid="$worker_pid"
wait_for_port "$sink_port"
idle="$(rss_kb "$relay_pid" VmRSS)"
envelope=(-f news@bench.test -t reader@bench.test -F "$bench_dir/message.eml")

# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
direct="$(source_rate "127.0.0.1:$sink_port" "${envelope[@]}")"
cpu0="$(cpu_s "$relay_pid")"
log "smtp-source → smtp-sink: $direct messages/s"
relayed_rate="$(source_rate "127.0.0.1:$relay_port" "${envelope[@]}")"
log "smtp-source → relay → smtp-sink: $relayed_rate messages/s"
relay_cpu_us="$(bc -l <<<"scale=1; ($(cpu_s "$relay_pid") - $cpu0) * 1000000 / $messages")"
lat_direct="$("$latency" --addr "127.0.0.1:$sink_port" --messages "$latency_messages" --file "$bench_dir/message.eml")"
lat_relay="$("$latency" --addr "127.0.0.1:$relay_port" --messages "$latency_messages" --file "$bench_dir/message.eml")"
log "latency, direct: $lat_direct"
log "latency, through the relay: $lat_relay"
pinned_runs=0
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    taskset -pc 0 "$sink_pid" >/dev/null
    taskset -apc 1 "$relay_pid" >/dev/null
    pinned_direct="$(source_cpus=0 source_rate "127.0.0.1:$sink_port" "${envelope[@]}")"
    log "pinned, smtp-source → smtp-sink: $pinned_direct messages/s"
    pinned_relayed="$(source_cpus=0 source_rate "127.0.0.1:$relay_port" "${envelope[@]}")"
    log "pinned, smtp-source → relay → smtp-sink: $pinned_relayed messages/s"
    pinned_ratio="$(bc -l <<<"scale=3; $pinned_relayed / $pinned_direct")"
    pinned_runs=1
else
    log "one core (or no taskset): the pinned runs are skipped"
fi
hwm="$(rss_kb "$relay_pid" VmHWM)"

metrics="$(curl -s "http://127.0.0.1:$port/metrics")"
series() { awk -v s="$1" '$1 == s {print $2}' <<<"$metrics"; }
relayed="$(series 'bounceops_relay_messages_total{outcome="relayed"}')"
errors="$(grep -E '^bounceops_relay_upstream_errors_total' <<<"$metrics" | awk '{s += $2} END {print s + 0}')"
grep -E '^bounceops_relay_(messages_total|upstream_errors_total)|^bounceops_relay_upstream_duration_seconds_(sum|count)' <<<"$metrics" >&2
p50() { sed -E 's/.*"p50_ms":([0-9.]+).*/\1/' <<<"$1"; }
added="$(bc -l <<<"scale=3; $(p50 "$lat_relay") - $(p50 "$lat_direct")")"
ratio="$(bc -l <<<"scale=3; $relayed_rate / $direct")"
printf '%s\n' "message: $size bytes, $sessions sessions, $messages messages per run" \
    "smtp-source → smtp-sink: $direct msg/s" \
    "smtp-source → relay → smtp-sink: $relayed_rate msg/s (ratio $ratio, all on the shared cores)" \
    "relay CPU: $relay_cpu_us µs per message (user + system, during the smtp-source run)" \
    "pinned (relay on CPU 1, smtp-source and smtp-sink on CPU 0): ${pinned_direct:-skipped} → ${pinned_relayed:-skipped} msg/s (ratio ${pinned_ratio:-skipped}, goal ≥ 0.9)" \
    "latency direct: $lat_direct" \
    "latency relay: $lat_relay" \
    "added at p50: $added ms (goal ≤ 2)" \
    "relay RSS: idle $(bc -l <<<"scale=1; $idle / 1024") MiB, peak $(bc -l <<<"scale=1; $hwm / 1024") MiB (goal ≤ 64)"

failed=0
want=$((messages * (1 + pinned_runs) + latency_messages))
if [ "${relayed%.*}" != "$want" ]; then log "FAIL: the relay relayed ${relayed:-none} messages, $want were sent"; failed=1; fi
if [ "$errors" != 0 ]; then log "FAIL: $errors upstream errors"; failed=1; fi
if [ "$smoke" != 1 ]; then
    # The rate goal is the relay's own cost to the sender: the pinned ratio where there are
    # two cores, else the shared one.
    goal_ratio="${pinned_ratio:-$ratio}"
    [ "$(bc -l <<<"$goal_ratio >= 0.9")" = 1 ] || { log "FAIL: rate ratio $goal_ratio < 0.9"; failed=1; }
    [ "$(bc -l <<<"$added <= 2")" = 1 ] || { log "FAIL: added p50 latency $added ms > 2"; failed=1; }
    [ "$hwm" -le $((64 * 1024)) ] || { log "FAIL: peak RSS $hwm kB > 64 MiB"; failed=1; }
fi
exit "$failed"
