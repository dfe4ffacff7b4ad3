#!/usr/bin/env bash
# The honest cross-half figure of the reason decision (BENCHMARKS.md, "Reasons on
# mail the rules were not written on"):
#   bash bench/reason_halves/run.sh CORPUS_DIR SISIMAI_DIR [REV]
# CORPUS_DIR holds expected.jsonl and emails/; SISIMAI_DIR is a checkout of
# github.com/sisimai/go-sisimai (its reason/why-*.go are the published vocabulary);
# REV (default HEAD) is the revision measured, built in a throwaway worktree whose
# reason.rs is instrumented to report, and to leave out on request, the phrases
# that decide. The corpus report and its measurement are this checkout's, so older
# revisions are measured the same way.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
corpus="$(cd "${1:?usage: $0 CORPUS_DIR SISIMAI_DIR [REV]}" && pwd)"
sisimai="$(cd "${2:?usage: $0 CORPUS_DIR SISIMAI_DIR [REV]}" && pwd)"
rev="${3:-HEAD}"
tree="$(mktemp -d)/tree"
cleanup() { git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true; }
trap cleanup EXIT
git -C "$repo" worktree add -q --detach "$tree" "$rev"
cp "$repo/classify/tests/measure/mod.rs" "$tree/classify/tests/measure/mod.rs"
cp "$repo/classify/examples/corpus_report.rs" "$tree/classify/examples/corpus_report.rs"
python3 "$here/instrument.py" "$tree/classify/src/reason.rs"
# A copy of this checkout's target saves building the dependencies again.
[ -d "$repo/target/release" ] && cp -a "$repo/target" "$tree/target"
(cd "$tree" && cargo build -q --release -p bounce-classify --example corpus_report --example classify_files)
python3 "$here/ablate.py" "$tree" "$corpus" "$sisimai"
