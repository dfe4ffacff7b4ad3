# Shared by the classifier benchmarks (bench/classify_vs_flufl/*.sh, bench/classify_vs_sisimai):
# classify-bench's build, and the smoke mode's corpus.
# shellcheck shell=bash

classify_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$classify_here/../.." && pwd)"
log() { printf 'bench: %s\n' "$*" >&2; }
# Smoke mode (BENCH_SMOKE=1, which .ci/run sets after the tests): a debug build, a corpus
# of a few files, runs of a fraction of a second; the figures mean nothing then, the checks
# all run.
smoke="${BENCH_SMOKE:-0}"

# Builds classify-bench (its own workspace) and sets classify_bench to the binary. The
# smoke build goes under the repository's target/, which git ignores.
classify_bench_build() {
    local dir
    if [ "$smoke" = 1 ]; then
        dir="${CARGO_TARGET_DIR:-$repo/target/classify-bench}"
        log "building classify-bench (debug, opt-level 1)"
        # opt-level 1: callgrind (cachegrind.sh) runs an unoptimised build 50 times slower.
        CARGO_PROFILE_DEV_OPT_LEVEL=1 CARGO_TARGET_DIR="$dir" cargo build --quiet --manifest-path "$classify_here/Cargo.toml"
        classify_bench="$dir/debug/classify-bench"
    else
        dir="${CARGO_TARGET_DIR:-$classify_here/target}"
        CARGO_TARGET_DIR="$dir" cargo build --release --quiet --manifest-path "$classify_here/Cargo.toml"
        classify_bench="$dir/release/classify-bench"
    fi
}

# Smoke mode: makes a small corpus in $1 from the corpus $2 (may be empty: then from the
# classifier's test fixtures) and logs which.
smoke_corpus() {
    python3 "$repo/bench/smoke_corpus.py" "$1" "${2:-}" 40 | while read -r line; do log "$line"; done
}

# Checks one tool's JSON line (classify-bench's or the other tool's, same fields): every
# file read, at least one pass, a rate, recipients expected; exits 1 naming what failed.
check_tool_line() {
    python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = json.loads(sys.argv[1])
except ValueError:
    sys.exit(f"bench: FAILED: not one JSON object: {sys.argv[1]!r}")
files = int(sys.argv[2])
failed = [what for what, bad in [
    (f"{r.get('messages')} messages read of {files} files", r.get("messages") != files),
    ("no pass over the corpus", r.get("passes", 0) < 1),
    ("no rate", not r.get("per_second", 0) > 0),
    ("no recipient expected", not r.get("expected", 0) > 0),
    ("a count is missing", any(k not in r for k in ("found", "reported", "correct"))),
] if bad]
if failed:
    sys.exit(f"bench: FAILED: {r.get('tool', '?')}: " + "; ".join(failed))
PY
}
