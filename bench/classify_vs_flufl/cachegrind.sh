#!/usr/bin/env bash
# Instructions and simulated cache misses of one pass over the corpus, inside
# `bounce_classify::classify` only (callgrind with its cache simulation):
#   bash bench/classify_vs_flufl/cachegrind.sh BIN [CORPUS_DIR]
# One pass = (a run over the corpus listed twice − a run over it once) / 2, so the
# one-time automaton builds and the file reading cancel out. Needs valgrind.
set -euo pipefail
bin="$1"; corpus="${2:-${BOUNCEOPS_CORPUS:-}}"
[ -n "$corpus" ] || { echo "usage: $0 BIN [CORPUS_DIR] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
corpus="$(cd "$corpus" && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/once" "$tmp/twice"
ln -s "$corpus/emails" "$tmp/once/emails"; ln -s "$corpus/emails" "$tmp/twice/emails"
cp "$corpus/expected.jsonl" "$tmp/once/"
cat "$corpus/expected.jsonl" "$corpus/expected.jsonl" > "$tmp/twice/expected.jsonl"
for c in once twice; do
    valgrind --tool=callgrind --cache-sim=yes --toggle-collect='bounce_classify::classify' \
        --callgrind-out-file="$tmp/$c.out" "$bin" "$tmp/$c" 0 > /dev/null 2> "$tmp/$c.err"
done
python3 - "$tmp/once.out" "$tmp/twice.out" <<'PY'
import sys
def totals(path):
    events = None
    for line in open(path):
        if line.startswith("events:"):
            events = line.split()[1:]
        if line.startswith("totals:") or line.startswith("summary:"):
            return dict(zip(events, map(int, line.split()[1:])))
once, twice = totals(sys.argv[1]), totals(sys.argv[2])
per = {k: (twice[k] - once[k]) / 2 for k in once}
print(f"instructions {per['Ir'] / 1e6:.2f} M, L1 data read misses {per['D1mr'] / 1e3:.1f} k, "
      f"L1 data write misses {per['D1mw'] / 1e3:.1f} k, last-level misses "
      f"{(per['DLmr'] + per['DLmw']) / 1e3:.1f} k, L1 instruction misses {per['I1mr'] / 1e3:.1f} k")
PY
