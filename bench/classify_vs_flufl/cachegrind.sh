#!/usr/bin/env bash
# Instructions and simulated cache misses of one pass over the corpus, inside
# `bounce_classify::classify` only (callgrind with its cache simulation):
#   bash bench/classify_vs_flufl/cachegrind.sh BIN [CORPUS_DIR]
# One pass = (a run over the corpus listed twice − a run over it once) / 2, so the
# one-time automaton builds and the file reading cancel out. Needs valgrind. Exits 1,
# saying which, when callgrind's totals are missing or the pass counted no instruction.
# Smoke mode: BENCH_SMOKE=1 bash bench/classify_vs_flufl/cachegrind.sh: the debug
# classify-bench on 5 files of the smoke corpus (bench/smoke_corpus.py); without valgrind
# it says SKIPPED and exits 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
if [ "$smoke" = 1 ] && [ $# -eq 0 ]; then
    command -v valgrind >/dev/null || { log "SKIPPED: cachegrind.sh needs valgrind (Debian: valgrind)"; exit 0; }
    classify_bench_build
    python3 "$repo/bench/smoke_corpus.py" "$tmp/corpus" "${BOUNCEOPS_CORPUS:-}" 5 >&2
    set -- "$classify_bench" "$tmp/corpus"
fi
[ $# -ge 1 ] || { echo "usage: $0 BIN [CORPUS_DIR] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
bin="$1"; corpus="${2:-${BOUNCEOPS_CORPUS:-}}"
[ -n "$corpus" ] || { echo "usage: $0 BIN [CORPUS_DIR] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
corpus="$(cd "$corpus" && pwd)"
mkdir -p "$tmp/once" "$tmp/twice"
ln -s "$corpus/emails" "$tmp/once/emails"; ln -s "$corpus/emails" "$tmp/twice/emails"
cp "$corpus/expected.jsonl" "$tmp/once/"
cat "$corpus/expected.jsonl" "$corpus/expected.jsonl" > "$tmp/twice/expected.jsonl"
for c in once twice; do
    valgrind --tool=callgrind --cache-sim=yes --toggle-collect='bounce_classify::classify' \
        --callgrind-out-file="$tmp/$c.out" "$bin" "$tmp/$c" 0 > /dev/null 2> "$tmp/$c.err" \
        || { cat "$tmp/$c.err" >&2; log "FAILED: callgrind over the corpus listed $c"; exit 1; }
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
    sys.exit(f"bench: FAILED: no totals in {path}")
once, twice = totals(sys.argv[1]), totals(sys.argv[2])
per = {k: (twice[k] - once[k]) / 2 for k in once}
missing = [k for k in ("Ir", "D1mr", "D1mw", "DLmr", "DLmw", "I1mr") if k not in per]
if missing or per["Ir"] <= 0:
    sys.exit(f"bench: FAILED: callgrind's events {missing} missing, or no instruction in classify (Ir {per.get('Ir')})")
print(f"instructions {per['Ir'] / 1e6:.2f} M, L1 data read misses {per['D1mr'] / 1e3:.1f} k, "
      f"L1 data write misses {per['D1mw'] / 1e3:.1f} k, last-level misses "
      f"{(per['DLmr'] + per['DLmw']) / 1e3:.1f} k, L1 instruction misses {per['I1mr'] / 1e3:.1f} k")
PY
