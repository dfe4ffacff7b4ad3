#!/usr/bin/env bash
# Two commits' classifiers by the clock, each linked in several code layouts:
#   bash bench/classify_vs_flufl/layouts.sh REV_A REV_B [LAYOUTS] [ROUNDS] [CORPUS_DIR]
# Either may be `.`, the working tree. Where a function lands in the binary moves this
# classifier's speed by several percent (two copies of the same code linked into one
# binary ran 9% apart), so one build of each side compares two layouts as much as two
# classifiers. Here each side is linked LAYOUTS times (default 4) with lld's
# --shuffle-sections under a different seed (`cargo rustc` gives the flags to
# classify-bench's own main only: the other crates are built once), and every binary runs for one second per round, ROUNDS rounds
# (default 10) in a shuffled order, pinned to one core: a round's runs are divided by the
# round's mean, so the machine's drift from round to round cancels. Prints, per side, the
# mean and the range of its layouts' medians, and B's mean over A's. Needs lld (Debian:
# lld) and taskset. Exits 1, saying which, when a build or a run fails or a run did not
# read every file.
# Smoke mode: BENCH_SMOKE=1 bash bench/classify_vs_flufl/layouts.sh: HEAD against the
# working tree, debug builds, one layout each, one round of 0.2 s runs on the smoke corpus;
# without lld it says SKIPPED and exits 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
if [ "$smoke" = 1 ] && [ $# -eq 0 ]; then
    command -v ld.lld >/dev/null || { log "SKIPPED: layouts.sh needs lld (Debian: lld)"; exit 0; }
    smoke_corpus "$tmp/corpus" "${BOUNCEOPS_CORPUS:-}"
    set -- HEAD . 1 1 "$tmp/corpus"
fi
usage="usage: $0 REV_A REV_B [LAYOUTS] [ROUNDS] [CORPUS_DIR] (or set BOUNCEOPS_CORPUS)"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
a="$1"; b="$2"; layouts="${3:-4}"; rounds="${4:-10}"; corpus="${5:-${BOUNCEOPS_CORPUS:-}}"
[ -n "$corpus" ] || { echo "$usage" >&2; exit 2; }
command -v ld.lld >/dev/null || { log "FAILED: layouts.sh needs lld (Debian: lld)"; exit 1; }
command -v taskset >/dev/null || { log "FAILED: layouts.sh needs taskset (util-linux)"; exit 1; }
corpus="$(cd "$corpus" && pwd)"
secs=1; [ "$smoke" = 1 ] && secs=0.2

# Builds REV's classify-bench (`.`: the working tree's) LAYOUTS times into $tmp/bins.
build_side() {
    local rev="$1" side="$2" src target seed
    if [ "$rev" = . ]; then
        src="$repo"
    else
        local commit
        commit="$(git -C "$repo" rev-parse --verify --quiet "$rev^{commit}")" \
            || { log "FAILED: $rev is not a commit of this repository"; exit 1; }
        src="$tmp/src-$side"; mkdir -p "$src"
        git -C "$repo" archive "$commit" Cargo.toml Cargo.lock classify bench/classify_vs_flufl \
            | tar -x -C "$src" || { log "FAILED: $rev has no classifier bench to build"; exit 1; }
    fi
    # classify-bench's own target directory (common.sh), whose crates are then built
    # already: only the classifier and the final link are made per side and layout.
    local target="${CARGO_TARGET_DIR:-$classify_here/target}" profile=(--release) out=release
    if [ "$smoke" = 1 ]; then
        target="${CARGO_TARGET_DIR:-$repo/target/classify-bench}"; profile=(); out=debug
        # As classify_bench_build builds it, so that its build is reused.
        export CARGO_PROFILE_DEV_OPT_LEVEL=1
    fi
    for seed in $(seq 1 "$layouts"); do
        log "building $rev, layout $seed of $layouts"
        CARGO_TARGET_DIR="$target" cargo rustc --quiet "${profile[@]}" --bin classify-bench \
            --manifest-path "$src/bench/classify_vs_flufl/Cargo.toml" -- \
            -C link-arg=-fuse-ld=lld -C "link-arg=-Wl,--shuffle-sections=*=$seed" \
            || { log "FAILED: the build of $rev, layout $seed"; exit 1; }
        cp "$target/$out/classify-bench" "$tmp/bins/$side-$seed"
    done
}
mkdir -p "$tmp/bins"
build_side "$a" A
build_side "$b" B

python3 - "$tmp/bins" "$corpus" "$rounds" "$secs" "$(grep -c . "$corpus/expected.jsonl")" "$a" "$b" <<'PY'
import json, os, random, statistics, subprocess, sys
bins_dir, corpus, rounds, secs, files, name_a, name_b = sys.argv[1:]
bins = sorted(os.listdir(bins_dir))
normed = {b: [] for b in bins}
for r in range(int(rounds)):
    order = bins[:]
    random.Random(r).shuffle(order)
    rates = {}
    for b in order:
        run = subprocess.run(["taskset", "-c", "0", os.path.join(bins_dir, b), corpus, secs],
                             capture_output=True, text=True)
        try:
            out = json.loads(run.stdout)
        except ValueError:
            sys.exit(f"bench: FAILED: {b} printed no JSON object (exit {run.returncode}): {run.stderr[-300:]}")
        if out.get("messages") != int(files) or not out.get("per_second", 0) > 0:
            sys.exit(f"bench: FAILED: {b} read {out.get('messages')} of {files} files, rate {out.get('per_second')}")
        rates[b] = out["per_second"]
    mean = statistics.mean(rates.values())
    for b, v in rates.items():
        normed[b].append(v / mean)
side = {s: [statistics.median(normed[b]) for b in bins if b.startswith(s + "-")] for s in "AB"}
for s, name in (("A", name_a), ("B", name_b)):
    v = side[s]
    print(f"{s} ({name}): {len(v)} layouts, speed {statistics.mean(v):.3f} of the round's mean "
          f"(layouts {min(v):.3f}-{max(v):.3f})")
print(f"B / A: {statistics.mean(side['B']) / statistics.mean(side['A']):.3f}")
PY
