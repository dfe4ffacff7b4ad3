#!/usr/bin/env bash
# bounce-classify against go-sisimai's decoder (whose results the corpus's
# expected.jsonl holds) on the same files, from memory, one core each:
#   bash bench/classify_vs_sisimai/run.sh CORPUS_DIR SISIMAI_DIR [MIN_SECONDS]
# SISIMAI_DIR is a checkout of github.com/sisimai/go-sisimai. Needs a Rust
# toolchain, Go >= 1.17 (Debian's golang-go 1.19 does) and taskset (util-linux).
# go-sisimai's two dependencies (golang.org/x/net, x/text) come from the Go
# module proxy, or, with GO_X_SRC set (GO_X_SRC=/usr/share/gocode/src with
# Debian's golang-golang-x-net-dev and -text-dev), from those sources offline.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
corpus="$(cd "${1:?usage: $0 CORPUS_DIR SISIMAI_DIR [MIN_SECONDS]}" && pwd)"
sisimai="$(cd "${2:?usage: $0 CORPUS_DIR SISIMAI_DIR [MIN_SECONDS]}" && pwd)"
secs="${3:-5}"
mod="$(mktemp -d)"
trap 'rm -rf "$mod"' EXIT
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
cargo build --release --quiet --manifest-path "$here/../classify_vs_flufl/Cargo.toml"
ours_bin="${CARGO_TARGET_DIR:-$here/../classify_vs_flufl/target}/release/classify-bench"
pin=(); command -v taskset >/dev/null && pin=(taskset -c 0)
ours="$("${pin[@]}" "$ours_bin" "$corpus" "$secs")"
theirs="$(GOMAXPROCS=1 "${pin[@]}" "$mod/sisimai-bench" "$corpus" "$secs")"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = (json.loads(a) for a in sys.argv[1:])
print(f"bounce-classify {ours['per_second']:.0f} messages/s, go-sisimai {theirs['per_second']:.0f} messages/s "
      f"({theirs['messages']} files, one core each): {ours['per_second']/theirs['per_second']:.1f}x")
PY
