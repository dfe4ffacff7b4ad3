#!/usr/bin/env bash
# Two classify-bench builds by the clock, in alternated pairs (A first in odd pairs, B
# first in even ones), each run pinned to one core:
#   bash bench/classify_vs_flufl/pairs.sh BIN_A BIN_B [PAIRS] [SECONDS] [CORPUS_DIR]
# Per run: messages/s by the wall clock (classify-bench's own figure) and per CPU second
# (messages × passes / (user + system) of the process, so time spent preempted by other
# work on a shared machine does not count). Needs taskset (util-linux) and GNU time.
set -euo pipefail
a="$1"; b="$2"; n="${3:-6}"; secs="${4:-3}"
corpus="${5:-${BOUNCEOPS_CORPUS:-}}"
[ -n "$corpus" ] || { echo "usage: $0 BIN_A BIN_B [PAIRS] [SECONDS] [CORPUS_DIR] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
run() {
    /usr/bin/time -f '%U %S' -o "$tmp/time" taskset -c 0 "$1" "$corpus" "$secs" > "$tmp/out"
    python3 - "$tmp/out" "$tmp/time" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(f"{o['per_second']:.0f} wall, {o['messages'] * o['passes'] / (u + s):.0f} cpu")
PY
}
for i in $(seq 1 "$n"); do
    if [ $((i % 2)) = 1 ]; then ra="$(run "$a")"; rb="$(run "$b")"; else rb="$(run "$b")"; ra="$(run "$a")"; fi
    echo "pair $i load $(cut -d' ' -f1 /proc/loadavg) | A $ra | B $rb"
done
