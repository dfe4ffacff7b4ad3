#!/usr/bin/env bash
# bounce-classify against flufl.bounce (the parser Mailman uses) on the same corpus
# files, in one run, each pinned to one core:
#   bash bench/classify_vs_flufl/run.sh [CORPUS_DIR] [MIN_SECONDS]
# CORPUS_DIR (holding expected.jsonl and emails/) defaults to $BOUNCEOPS_CORPUS.
# Needs: a Rust toolchain, python3 with `pip install flufl.bounce` ($BENCH_PYTHON names
# another interpreter, e.g. a virtualenv's), taskset (util-linux). Exits 1, saying which,
# when a side did not read every file, made no pass or no rate, or bounce-classify found
# no recipient.
# Smoke mode: BENCH_SMOKE=1 bash bench/classify_vs_flufl/run.sh [CORPUS_DIR]: the debug
# build, 40 files of the corpus (or the classifier's test fixtures when there is none),
# 0.2 s per side; without flufl.bounce it runs bounce-classify's side alone and says
# SKIPPED for the other.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
here="$classify_here"
python="${BENCH_PYTHON:-python3}"
corpus="${1:-${BOUNCEOPS_CORPUS:-}}"
secs="${2:-5}"
flufl=1
if [ "$smoke" = 1 ]; then
    secs="${2:-0.2}"
    tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
    smoke_corpus "$tmp/corpus" "$corpus"
    corpus="$tmp/corpus"
    "$python" -c 'import flufl.bounce' 2>/dev/null || {
        flufl=0
        log "SKIPPED: flufl.bounce's side (not importable by $python; pip install flufl.bounce)"
    }
else
    [ -n "$corpus" ] || { echo "usage: $0 CORPUS_DIR [MIN_SECONDS] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
    "$python" -c 'import flufl.bounce' 2>/dev/null || { echo "pip install flufl.bounce first" >&2; exit 1; }
fi
corpus="$(cd "$corpus" && pwd)"
files="$(grep -c . "$corpus/expected.jsonl")"
classify_bench_build
pin=(); command -v taskset >/dev/null && pin=(taskset -c 0)
ours="$("${pin[@]}" "$classify_bench" "$corpus" "$secs")"
check_tool_line "$ours" "$files"
theirs='{"tool": "flufl.bounce (skipped)"}'
if [ "$flufl" = 1 ]; then
    theirs="$("${pin[@]}" "$python" "$here/flufl_bench.py" "$corpus" "$secs")"
    check_tool_line "$theirs" "$files"
fi
python3 - "$ours" "$theirs" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print(f"{'tool':<16}{'messages/s':>12}{'recall':>22}{'precision':>22}")
for r in rows:
    if "per_second" not in r:
        print(f"{r['tool']}")
        continue
    rec = f"{100*r['found']/max(r['expected'],1):.1f}% ({r['found']}/{r['expected']})"
    pre = f"{100*r['correct']/max(r['reported'],1):.1f}% ({r['correct']}/{r['reported']})"
    print(f"{r['tool']:<16}{r['per_second']:>12.0f}{rec:>22}{pre:>22}")
if "per_second" in rows[1]:
    print(f"speed ratio: {rows[0]['per_second']/rows[1]['per_second']:.1f}x "
          f"({rows[0]['messages']} files, one core each)")
if rows[0]["found"] == 0:
    sys.exit("bench: FAILED: bounce-classify found none of the recipients expected")
PY
