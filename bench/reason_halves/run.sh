#!/usr/bin/env bash
# The honest cross-half figure of the reason decision (BENCHMARKS.md, "Reasons on
# mail the rules were not written on"):
#   bash bench/reason_halves/run.sh CORPUS_DIR SISIMAI_DIR [REV]
# CORPUS_DIR holds expected.jsonl and emails/; SISIMAI_DIR is a checkout of
# github.com/sisimai/go-sisimai (its reason/why-*.go are the published vocabulary);
# REV (default HEAD) is the revision measured, built in a throwaway worktree whose
# reason.rs is instrumented to report, and to leave out on request, the phrases
# that decide. The corpus report and its measurement are this checkout's, so older
# revisions are measured the same way. Exits 1, saying which, when reason.rs no longer
# has what instrument.py patches, no phrase was read from its tables or reported as
# deciding, or corpus_report's agreement figures are missing.
# Smoke mode: BENCH_SMOKE=1 bash bench/reason_halves/run.sh [CORPUS_DIR [SISIMAI_DIR [REV]]]:
# CORPUS_DIR defaults to $BOUNCEOPS_CORPUS, of which 40 files are measured; the debug build
# (both builds go to target/bench-reason-halves); without a go-sisimai checkout the published
# vocabulary is taken as empty, and said so. Without a corpus it says SKIPPED and exits 0: the
# measurement needs the corpus's reasons, which the classifier's test fixtures do not give.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
smoke="${BENCH_SMOKE:-0}"
work="$(mktemp -d)"
tree="$work/tree"
cleanup() { git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
if [ "$smoke" = 1 ]; then
    corpus="${1:-${BOUNCEOPS_CORPUS:-}}"
    if [ -z "$corpus" ]; then
        echo "bench: SKIPPED: reason_halves needs the external corpus (BOUNCEOPS_CORPUS unset)" >&2
        exit 0
    fi
    python3 "$repo/bench/smoke_corpus.py" "$work/corpus" "$(cd "$corpus" && pwd)" 40 | sed 's/^/bench: /' >&2
    corpus="$work/corpus"
    sisimai="${2:-}"
    if [ -z "$sisimai" ]; then
        echo "bench: SKIPPED: Sisimai's published vocabulary (no go-sisimai checkout given): every phrase counts as unpublished" >&2
        mkdir -p "$work/no-sisimai/reason"
        sisimai="$work/no-sisimai"
    fi
    sisimai="$(cd "$sisimai" && pwd)"
else
    corpus="$(cd "${1:?usage: $0 CORPUS_DIR SISIMAI_DIR [REV]}" && pwd)"
    sisimai="$(cd "${2:?usage: $0 CORPUS_DIR SISIMAI_DIR [REV]}" && pwd)"
fi
rev="${3:-HEAD}"
git -C "$repo" worktree add -q --detach "$tree" "$rev"
cp "$repo/classify/tests/measure/mod.rs" "$tree/classify/tests/measure/mod.rs"
cp "$repo/classify/examples/corpus_report.rs" "$tree/classify/examples/corpus_report.rs"
python3 "$here/instrument.py" "$tree/classify/src/reason.rs"
# A target of its own, kept between runs (the dependencies are built once), rather than a
# copy of the checkout's: the instrumented crate must not replace the checkout's own examples.
export CARGO_TARGET_DIR="$repo/target/bench-reason-halves"
if [ "$smoke" = 1 ]; then
    (cd "$tree" && cargo build -q -p bounce-classify --example corpus_report --example classify_files)
    bins="$CARGO_TARGET_DIR/debug/examples"
else
    (cd "$tree" && cargo build -q --release -p bounce-classify --example corpus_report --example classify_files)
    bins="$CARGO_TARGET_DIR/release/examples"
fi
ALLOW_EMPTY_VOCABULARY="$smoke" python3 "$here/ablate.py" "$tree" "$corpus" "$sisimai" "$bins"
