"""flufl.bounce's side of run.sh: the same files, the same scoring rule and the same
output line as the Rust program (src/main.rs).

python3 flufl_bench.py CORPUS_DIR [MIN_SECONDS]   prints one JSON object.
"""
import email
import json
import sys
import time
from pathlib import Path

from flufl.bounce import all_failures


def lower(values):
    return [v.lower() for v in (values or []) if isinstance(v, str)]


def recipients(raw):
    """Every address flufl.bounce reports, temporary and permanent failures alike."""
    msg = email.message_from_bytes(raw)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a broken message must not stop the run; it found nothing
        return set()
    return {a.decode("utf-8", "replace").lower() if isinstance(a, bytes) else str(a).lower()
            for a in temporary | permanent}


def main():
    root = Path(sys.argv[1])
    min_secs = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    entries = [json.loads(l) for l in (root / "expected.jsonl").read_text().splitlines() if l.strip()]
    raws = [(root / "emails" / e["file"]).read_bytes() for e in entries]

    passes = 0
    start = time.perf_counter()
    while passes == 0 or time.perf_counter() - start < min_secs:
        for raw in raws:
            recipients(raw)
        passes += 1
    elapsed = time.perf_counter() - start

    expected = found = reported = correct = 0
    for e, raw in zip(entries, raws):
        got = recipients(raw)
        accepted = set(lower(e.get("recipient"))) | set(lower(e.get("recipient_alternates"))) \
            | set(lower(e.get("original_recipient")))
        alternates = lower(e.get("recipient_alternates"))
        originals = lower(e.get("original_recipient"))
        if e.get("reason") not in ("vacation", "delivered"):
            wanted = {r["recipient"].lower() for r in e.get("results", []) if r.get("recipient")}
            for w in wanted:
                expected += 1
                if w in got or any(a in got for a in alternates) or any(a in got for a in originals):
                    found += 1
        reported += len(got)
        correct += len(got & accepted)
    print(json.dumps({
        "tool": "flufl.bounce",
        "messages": len(raws),
        "passes": passes,
        "seconds": elapsed,
        "per_second": len(raws) * passes / elapsed,
        "expected": expected,
        "found": found,
        "reported": reported,
        "correct": correct,
    }))


if __name__ == "__main__":
    main()
