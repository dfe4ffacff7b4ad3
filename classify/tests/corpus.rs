//! Regression gate on the real-mail corpus in `shared/corpus` (a sibling of
//! the repository). Thresholds sit just below the figures reached, so any
//! regression fails; `examples/corpus_report.rs` prints the details.

mod measure;

use std::path::Path;

#[test]
fn corpus_figures() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
    assert!(
        root.join("expected.jsonl").is_file(),
        "corpus missing: expected {} (shared/corpus must sit next to the repository clone)",
        root.display()
    );
    let f = measure::measure(root).unwrap_or_else(|e| panic!("{e}"));
    let report = format!(
        "recall {:.4}, precision {:.4}, status {:.4}, arf {}/{}, not-bounce {}/{}, hard {}/{}, bounce kind {}/{}\n{}",
        f.recall(),
        f.precision(),
        f.status_agreement(),
        f.arf_complaint,
        f.arf_total,
        f.not_bounce_ok,
        f.not_bounce_total,
        f.hard_ok,
        f.hard_total,
        f.bounce_kind_ok,
        f.bounce_total,
        f.misses.join("\n")
    );
    // Reached on the corpus at 18e585c: recall 429/437, precision 429/432,
    // status 302/308, every ARF / auto-reply / delivery / hardbounce right.
    assert!(f.messages >= 421, "only {} messages read", f.messages);
    assert!(f.recall() >= 0.98, "recall fell\n{report}");
    assert!(f.precision() >= 0.993, "precision fell\n{report}");
    assert!(
        f.status_agreement() >= 0.98,
        "status agreement fell\n{report}"
    );
    assert!(f.bounce_kind_ok >= 397, "bounces not recognised\n{report}");
    assert_eq!(f.arf_complaint, f.arf_total, "{report}");
    assert_eq!(f.not_bounce_ok, f.not_bounce_total, "{report}");
    assert_eq!(f.hard_ok, f.hard_total, "{report}");
}

/// Every corpus message cut short at several points must still classify:
/// the mailbox reader can hand over truncated downloads.
#[test]
fn truncated_corpus_messages_never_panic() {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/emails/maildir/bsd"
    ));
    let entries = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("corpus missing at {}: {e}", root.display()));
    for entry in entries.flatten() {
        let raw = std::fs::read(entry.path()).expect("readable corpus file");
        for n in 1..=16 {
            let _ = bounce_classify::classify(&raw[..raw.len() * n / 17]);
        }
    }
}
