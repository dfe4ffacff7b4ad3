#!/usr/bin/env bash
# Two classify-bench builds by the clock, in alternated pairs (A first in odd pairs, B
# first in even ones), each run pinned to one core:
#   bash bench/classify_vs_flufl/pairs.sh BIN_A BIN_B [PAIRS] [SECONDS] [CORPUS_DIR]
# Per run: messages/s by the wall clock (classify-bench's own figure) and per CPU second
# (messages × passes / (user + system) of the process, so time spent preempted by other
# work on a shared machine does not count). Needs taskset (util-linux) and GNU time.
# Exits 1, saying which, when a run's output or its times are missing or did not read
# every file. Two binaries are also two code layouts, which alone move this classifier by
# several percent (BENCHMARKS.md, issue 23, eighth round): for differences that small,
# layouts.sh links each side in several layouts.
# Smoke mode: BENCH_SMOKE=1 bash bench/classify_vs_flufl/pairs.sh: the debug classify-bench
# as both A and B, 1 pair of 0.2 s runs on the smoke corpus (bench/smoke_corpus.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
if [ "$smoke" = 1 ] && [ $# -eq 0 ]; then
    classify_bench_build
    smoke_corpus "$tmp/corpus" "${BOUNCEOPS_CORPUS:-}"
    set -- "$classify_bench" "$classify_bench" 1 0.2 "$tmp/corpus"
fi
[ $# -ge 2 ] || { echo "usage: $0 BIN_A BIN_B [PAIRS] [SECONDS] [CORPUS_DIR] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
a="$1"; b="$2"; n="${3:-6}"; secs="${4:-3}"
corpus="${5:-${BOUNCEOPS_CORPUS:-}}"
[ -n "$corpus" ] || { echo "usage: $0 BIN_A BIN_B [PAIRS] [SECONDS] [CORPUS_DIR] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
files="$(grep -c . "$corpus/expected.jsonl")"
run() {
    /usr/bin/time -f '%U %S' -o "$tmp/time" taskset -c 0 "$1" "$corpus" "$secs" > "$tmp/out"
    python3 - "$tmp/out" "$tmp/time" "$files" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
if o.get("messages") != int(sys.argv[3]) or not o.get("per_second", 0) > 0 or u + s <= 0:
    sys.exit(f"bench: FAILED: a run read {o.get('messages')} of {sys.argv[3]} files, "
             f"rate {o.get('per_second')}, CPU {u + s} s")
print(f"{o['per_second']:.0f} wall, {o['messages'] * o['passes'] / (u + s):.0f} cpu")
PY
}
for i in $(seq 1 "$n"); do
    if [ $((i % 2)) = 1 ]; then ra="$(run "$a")"; rb="$(run "$b")"; else rb="$(run "$b")"; ra="$(run "$a")"; fi
    echo "pair $i load $(cut -d' ' -f1 /proc/loadavg) | A $ra | B $rb"
done
