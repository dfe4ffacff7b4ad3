"""A corpus of a few files for the classifier benchmarks' smoke modes (BENCH_SMOKE=1), in
the external corpus's layout (expected.jsonl and emails/):

    python3 bench/smoke_corpus.py OUT [CORPUS_DIR] [N]

With CORPUS_DIR (the external corpus, when the machine has it): N of its entries (default
40), taken at even steps through expected.jsonl so that both halves and every MTA family
are represented, their files linked, not copied. Without it: the classifier's own test
fixtures (classify/tests/fixtures; the first N), their expectations written the corpus's way, which is
all that recipient scoring reads; reasons are not in the fixtures, so reason figures on
this corpus mean nothing. Prints which it made."""
import json
import os
import sys
from pathlib import Path

out = Path(sys.argv[1])
source = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None
n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
(out / "emails").mkdir(parents=True, exist_ok=True)

if source is not None:
    lines = [l for l in (source / "expected.jsonl").read_text().splitlines() if l.strip()]
    if not lines:
        sys.exit(f"{source}/expected.jsonl holds no entry")
    step = max(1, len(lines) // n)
    picked = lines[::step][:n]
    for line in picked:
        file = json.loads(line)["file"]
        link = out / "emails" / file
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((source / "emails" / file).resolve(), link)
    (out / "expected.jsonl").write_text("\n".join(picked) + "\n")
    print(f"smoke corpus: {len(picked)} of the {len(lines)} entries of {source}")
else:
    fixtures = Path(__file__).resolve().parent.parent / "classify" / "tests" / "fixtures"
    entries = []
    lines = [l for l in (fixtures / "expected.jsonl").read_text().splitlines() if l.strip()]
    for line in lines[:n]:
        f = json.loads(line)
        file = f"maildir/bsd/{f['file']}"
        link = out / "emails" / file
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(fixtures / f["file"], link)
        emails = [r["email"] for r in f.get("recipients", []) if r.get("email")]
        # The scoring rules leave out the recipients of these two kinds.
        reason = {"autoreply": "vacation", "delivery": "delivered"}.get(f.get("kind"), "")
        entries.append(json.dumps({
            "file": file, "recipient": emails, "recipient_alternates": [], "original_recipient": [],
            "reason": reason,
            "results": [{"recipient": r["email"], "status": r.get("status"), "reason": reason,
                         "hardbounce": r.get("type") == "hard"} for r in f.get("recipients", [])],
        }))
    (out / "expected.jsonl").write_text("\n".join(entries) + "\n")
    print(f"smoke corpus: {len(entries)} of the {len(lines)} test fixtures of classify/tests/fixtures (no external corpus)")
