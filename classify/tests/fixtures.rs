//! The classifier on messages this project writes itself (`tests/fixtures/*.eml`,
//! synthetic, at least one per format and MTA family it supports), each checked against
//! its line in `tests/fixtures/expected.jsonl`. Unlike the external corpus
//! (`tests/corpus.rs`), these need nothing outside the repository, so they always run.
//!
//! An expectation states what a correct classifier says, not what this one happens to
//! say. Where the two differ, the line carries `known_wrong` (why the output is wrong)
//! and the test requires the difference to persist, so a fix is noticed and the marker
//! removed.

use bounce_classify::{Classification, classify};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Case {
    file: String,
    /// `kind`, `recipients`, `subscriber_uuid` and `campaign_uuid` as a correct
    /// classifier gives them.
    expected: Value,
    known_wrong: Option<String>,
    raw: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let dir = fixtures_dir();
    let lines = std::fs::read_to_string(dir.join("expected.jsonl")).expect("expected.jsonl");
    lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            let mut v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("expected.jsonl line {}: {e}", n + 1));
            let obj = v.as_object_mut().expect("each line is an object");
            let file = obj
                .remove("file")
                .and_then(|f| f.as_str().map(str::to_string))
                .unwrap_or_else(|| panic!("expected.jsonl line {}: no file", n + 1));
            // Documentation for the reader of the file, not part of the result.
            obj.remove("family");
            let known_wrong = obj
                .remove("known_wrong")
                .map(|w| w.as_str().unwrap_or_default().to_string());
            let raw = std::fs::read(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            Case {
                file,
                expected: v,
                known_wrong,
                raw,
            }
        })
        .collect()
}

/// The part of a classification that `expected.jsonl` pins down. The diagnostic is
/// left out: it is the MTA's prose, reworded by every release of every MTA.
fn observed(c: &Classification) -> Value {
    let recipients: Vec<Value> = c
        .recipients
        .iter()
        .map(|r| {
            json!({
                "email": r.email,
                "status": r.status,
                "action": r.action,
                "type": r.bounce_type,
            })
        })
        .collect();
    json!({
        "kind": c.kind,
        "recipients": recipients,
        "subscriber_uuid": c.subscriber_uuid,
        "campaign_uuid": c.campaign_uuid,
    })
}

/// A description of how `got` differs from `expected`, or `None` when they agree.
fn mismatch(file: &str, expected: &Value, got: &Value) -> Option<String> {
    (expected != got).then(|| format!("{file}:\n  expected {expected}\n  got      {got}"))
}

#[test]
fn every_fixture_classifies_as_expected() {
    let mut failures = Vec::new();
    for case in cases() {
        let got = observed(&classify(&case.raw));
        let differs = mismatch(&case.file, &case.expected, &got);
        match (&case.known_wrong, differs) {
            (None, Some(m)) => failures.push(m),
            (Some(why), None) => failures.push(format!(
                "{}: now classified as expected; remove its known_wrong ({why})",
                case.file
            )),
            (Some(why), Some(_)) => eprintln!("known wrong, still: {}: {why}", case.file),
            (None, None) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_file_has_exactly_one_expectation() {
    let listed: Vec<String> = cases().into_iter().map(|c| c.file).collect();
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a file listed twice: {listed:?}"
    );
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    let listed: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(on_disk, listed, "fixture files and expected.jsonl disagree");
}

#[test]
fn the_fixtures_exercise_every_kind() {
    let kinds: BTreeSet<String> = cases()
        .iter()
        .map(|c| c.expected["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    let all = ["autoreply", "bounce", "complaint", "delivery", "unknown"];
    assert_eq!(kinds, all.iter().map(|k| k.to_string()).collect());
}

#[test]
fn a_changed_expectation_is_reported() {
    // The comparison must see a difference in any pinned field, or a fixture could
    // never fail.
    let case = cases()
        .into_iter()
        .find(|c| c.known_wrong.is_none() && c.expected["recipients"][0].is_object())
        .expect("a fixture with a recipient");
    let got = observed(&classify(&case.raw));
    assert_eq!(mismatch(&case.file, &case.expected, &got), None);
    for (pointer, wrong) in [
        ("/kind", json!("complaint")),
        ("/recipients/0/email", json!("someone-else@example.com")),
        ("/recipients/0/status", json!("4.0.0")),
        ("/recipients/0/action", json!("expanded")),
        ("/recipients/0/type", json!("complaint")),
        (
            "/subscriber_uuid",
            json!("00000000-0000-4000-8000-000000000000"),
        ),
        (
            "/campaign_uuid",
            json!("00000000-0000-4000-8000-000000000000"),
        ),
    ] {
        let mut changed = case.expected.clone();
        *changed.pointer_mut(pointer).expect("field exists") = wrong;
        assert!(
            mismatch(&case.file, &changed, &got).is_some(),
            "a wrong {pointer} went unnoticed"
        );
    }
    let mut extra = case.expected.clone();
    extra["recipients"]
        .as_array_mut()
        .expect("recipients")
        .push(case.expected["recipients"][0].clone());
    assert!(mismatch(&case.file, &extra, &got).is_some());
}

#[test]
fn line_endings_do_not_change_the_result() {
    // Mailboxes hand over CRLF (POP3, IMAP) and files keep LF: both must classify alike.
    for case in cases() {
        let lf: Vec<u8> = case.raw.iter().copied().filter(|&b| b != b'\r').collect();
        let mut crlf = Vec::with_capacity(lf.len() * 2);
        for &b in &lf {
            if b == b'\n' {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        let want = observed(&classify(&case.raw));
        assert_eq!(observed(&classify(&lf)), want, "{} with LF", case.file);
        assert_eq!(observed(&classify(&crlf)), want, "{} with CRLF", case.file);
    }
}

/// The mailbox reader can hand over truncated downloads: every fixture cut short at
/// many points must still classify, and a bounce cut inside its quoted original must
/// still name its recipients.
#[test]
fn truncated_fixtures_classify_without_panicking() {
    for case in cases() {
        for n in 1..=32 {
            let _ = classify(&case.raw[..case.raw.len() * n / 33]);
        }
    }
    let sendmail = cases()
        .into_iter()
        .find(|c| c.file == "sendmail-dsn-user-unknown.eml")
        .expect("sendmail fixture");
    let cut = sendmail
        .raw
        .windows(b"Content-Type: message/rfc822".len())
        .position(|w| w == b"Content-Type: message/rfc822")
        .expect("embedded original");
    let c = classify(&sendmail.raw[..cut]);
    let emails: Vec<&str> = c.recipients.iter().map(|r| r.email.as_str()).collect();
    assert_eq!(emails, ["amelie.roux@example.net"]);
}
