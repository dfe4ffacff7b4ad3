#!/usr/bin/env bash
# bounce-classify against flufl.bounce (the parser Mailman uses) on the same corpus
# files, in one run, each pinned to one core:
#   bash bench/classify_vs_flufl/run.sh [CORPUS_DIR] [MIN_SECONDS]
# CORPUS_DIR (holding expected.jsonl and emails/) defaults to $BOUNCEOPS_CORPUS.
# Needs: a Rust toolchain, python3 with `pip install flufl.bounce`, taskset (util-linux).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
corpus="${1:-${BOUNCEOPS_CORPUS:-}}"
[ -n "$corpus" ] || { echo "usage: $0 CORPUS_DIR [MIN_SECONDS] (or set BOUNCEOPS_CORPUS)" >&2; exit 2; }
corpus="$(cd "$corpus" && pwd)"
secs="${2:-5}"
python3 -c 'import flufl.bounce' 2>/dev/null || { echo "pip install flufl.bounce first" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$here/target}/release/classify-bench"
pin=(); command -v taskset >/dev/null && pin=(taskset -c 0)
ours="$("${pin[@]}" "$bin" "$corpus" "$secs")"
theirs="$("${pin[@]}" python3 "$here/flufl_bench.py" "$corpus" "$secs")"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print(f"{'tool':<16}{'messages/s':>12}{'recall':>22}{'precision':>22}")
for r in rows:
    rec = f"{100*r['found']/max(r['expected'],1):.1f}% ({r['found']}/{r['expected']})"
    pre = f"{100*r['correct']/max(r['reported'],1):.1f}% ({r['correct']}/{r['reported']})"
    print(f"{r['tool']:<16}{r['per_second']:>12.0f}{rec:>22}{pre:>22}")
print(f"speed ratio: {rows[0]['per_second']/rows[1]['per_second']:.1f}x "
      f"({rows[0]['messages']} files, one core each)")
PY
