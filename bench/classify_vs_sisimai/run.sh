#!/usr/bin/env bash
# bounce-classify against go-sisimai's decoder (whose results the corpus's
# expected.jsonl holds) on the same files, from memory, one core each:
#   bash bench/classify_vs_sisimai/run.sh CORPUS_DIR SISIMAI_DIR [MIN_SECONDS]
# SISIMAI_DIR is a checkout of github.com/sisimai/go-sisimai. Needs a Rust
# toolchain, Go >= 1.17 (Debian's golang-go 1.19 does) and taskset (util-linux).
# go-sisimai's two dependencies (golang.org/x/net, x/text) come from the Go
# module proxy, or, with GO_X_SRC set (GO_X_SRC=/usr/share/gocode/src with
# Debian's golang-golang-x-net-dev and -text-dev), from those sources offline.
# Exits 1, saying which, when a side did not read every file, made no pass or no rate.
# Smoke mode: BENCH_SMOKE=1 bash bench/classify_vs_sisimai/run.sh [CORPUS_DIR [SISIMAI_DIR]]:
# the debug classify-bench, 40 files of the corpus (or the classifier's test fixtures),
# 0.2 s per side; without go or a go-sisimai checkout it runs bounce-classify's side alone
# and says SKIPPED for the other.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../classify_vs_flufl/common.sh"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$(mktemp -d)"
trap 'rm -rf "$mod"' EXIT
theirs_too=1
if [ "$smoke" = 1 ]; then
    smoke_corpus "$mod/corpus" "${1:-${BOUNCEOPS_CORPUS:-}}"
    corpus="$mod/corpus"
    sisimai="${2:-}"
    secs="${3:-0.2}"
    if [ -z "$sisimai" ] || ! command -v go >/dev/null; then
        theirs_too=0
        log "SKIPPED: go-sisimai's side (needs go, Debian's golang-go, and a go-sisimai checkout as SISIMAI_DIR; here: go $(command -v go >/dev/null && echo present || echo absent), SISIMAI_DIR ${sisimai:-not given})"
    else
        sisimai="$(cd "$sisimai" && pwd)"
    fi
else
    corpus="$(cd "${1:?usage: $0 CORPUS_DIR SISIMAI_DIR [MIN_SECONDS]}" && pwd)"
    sisimai="$(cd "${2:?usage: $0 CORPUS_DIR SISIMAI_DIR [MIN_SECONDS]}" && pwd)"
    secs="${3:-5}"
fi
files="$(grep -c . "$corpus/expected.jsonl")"
if [ "$theirs_too" = 1 ]; then
    cp "$here/sisimai_bench.go" "$mod/main.go"
    cat > "$mod/go.mod" <<MOD
module sisimaibench

go 1.17

require libsisimai.org/sisimai v0.0.0

replace libsisimai.org/sisimai => $sisimai
MOD
    if [ -n "${GO_X_SRC:-}" ]; then
      for x in net text sys; do
        echo "replace golang.org/x/$x => $GO_X_SRC/golang.org/x/$x" >> "$mod/go.mod"
      done
      export GOPROXY=off GOFLAGS=-mod=mod
    fi
    (cd "$mod" && go mod tidy -compat=1.17 >/dev/null && CGO_ENABLED=0 go build -o sisimai-bench .)
fi
classify_bench_build
pin=(); command -v taskset >/dev/null && pin=(taskset -c 0)
ours="$("${pin[@]}" "$classify_bench" "$corpus" "$secs")"
check_tool_line "$ours" "$files"
if [ "$theirs_too" = 0 ]; then
    python3 - "$ours" <<'PY'
import json, sys
ours = json.loads(sys.argv[1])
print(f"bounce-classify {ours['per_second']:.0f} messages/s ({ours['messages']} files); go-sisimai SKIPPED")
PY
    exit 0
fi
theirs="$(GOMAXPROCS=1 "${pin[@]}" "$mod/sisimai-bench" "$corpus" "$secs")"
python3 - "$theirs" "$files" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
if r.get("messages") != int(sys.argv[2]) or not r.get("per_second", 0) > 0:
    sys.exit(f"bench: FAILED: go-sisimai read {r.get('messages')} of {sys.argv[2]} files, rate {r.get('per_second')}")
PY
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = (json.loads(a) for a in sys.argv[1:])
print(f"bounce-classify {ours['per_second']:.0f} messages/s, go-sisimai {theirs['per_second']:.0f} messages/s "
      f"({theirs['messages']} files, one core each): {ours['per_second']/theirs['per_second']:.1f}x")
PY
