//! Owns the corpus measurement shared by `tests/corpus.rs` and
//! `examples/corpus_report.rs`: runs the classifier over every message of an
//! external bounce corpus (a folder holding `expected.jsonl` and `emails/`,
//! named by `BOUNCEOPS_CORPUS`) and scores it against `expected.jsonl`.

// Each includer uses part of it (the test has no use for throughput).
#![allow(dead_code)]

use bounce_classify::{BounceType, Classification, Kind, classify};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable naming the external corpus folder.
pub const CORPUS_VAR: &str = "BOUNCEOPS_CORPUS";

/// The corpus folder named by `BOUNCEOPS_CORPUS`, or `None` when the variable is
/// unset or empty (the corpus is not part of the repository).
pub fn root_from_env() -> Option<PathBuf> {
    std::env::var_os(CORPUS_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// One of the two halves the corpus is split into to measure how well the
/// classifier does on mail it was not tuned on: rules are developed on one
/// half's misses and judged by the other half's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    A,
    B,
}

impl Half {
    /// The half a corpus file belongs to, by its MTA family: the file name
    /// without its number and its `lhost-` / `rhost-` prefix (`lhost-postfix-01.eml`
    /// -> `postfix`), so that every sample of one MTA or provider, its CRLF and
    /// CR copies too, falls in the same half. Families `a` to `m` are half A
    /// (Exim, Dragonfly, Amazon SES, Exchange, Gmail, Microsoft, ...), `n` to
    /// `z` and digits' names half B (Postfix, Sendmail, qmail, RFC 3464,
    /// Office 365, Yahoo, ...): about 205 recipients each on the corpus at
    /// 18e585c. By name, not by a count, so that samples added later do not move
    /// a family from one half to the other.
    pub fn of(file: &str) -> Half {
        let name = file.rsplit('/').next().unwrap_or(file);
        let family = name
            .strip_prefix("lhost-")
            .or_else(|| name.strip_prefix("rhost-"))
            .unwrap_or(name);
        match family.bytes().next() {
            Some(b) if b.to_ascii_lowercase() < b'n' && b.is_ascii_alphabetic() => Half::A,
            _ => Half::B,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Half::A => "A",
            Half::B => "B",
        }
    }
}

/// Sisimai's own pseudo-statuses (`5.0.9xx`) encode its reason vocabulary;
/// they never appear in the message, so no classifier can "agree" with them.
/// They are left out of status agreement and counted separately.
fn is_pseudo_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3 && parts[1] == "0" && parts[2].len() == 3 && parts[2].starts_with('9')
}

#[derive(Debug, Default)]
pub struct Figures {
    pub messages: usize,
    pub elapsed: Duration,
    pub expected_recipients: usize,
    pub found_recipients: usize,
    /// Of `found_recipients`, those reported by the DSN's Original-Recipient
    /// (the address that was mailed, before an alias or forward rewrote it)
    /// where Sisimai expects the Final-Recipient.
    pub found_via_original: usize,
    pub reported_recipients: usize,
    pub correct_reported: usize,
    pub status_expected: usize,
    pub status_agree: usize,
    pub pseudo_status: usize,
    pub pseudo_class_agree: usize,
    pub arf_total: usize,
    pub arf_complaint: usize,
    pub not_bounce_total: usize,
    pub not_bounce_ok: usize,
    pub bounce_total: usize,
    pub bounce_kind_ok: usize,
    pub hard_total: usize,
    pub hard_ok: usize,
    /// Found recipients whose expected reason is a bounce reason (not
    /// `feedback`, `vacation` or `delivered`), and those given the same one.
    pub reason_expected: usize,
    pub reason_agree: usize,
    /// Per expected reason: (found recipients, agreeing).
    pub reason_by_expected: BTreeMap<String, (usize, usize)>,
    /// (expected, got) -> count, for the disagreements.
    pub reason_confusion: BTreeMap<(String, String), usize>,
    pub misses: Vec<String>,
}

/// The figures of the whole corpus and of each of its halves.
#[derive(Debug, Default)]
pub struct Measurement {
    pub all: Figures,
    pub a: Figures,
    pub b: Figures,
}

impl Measurement {
    pub fn half(&self, half: Half) -> &Figures {
        match half {
            Half::A => &self.a,
            Half::B => &self.b,
        }
    }
}

impl Figures {
    pub fn recall(&self) -> f64 {
        ratio(self.found_recipients, self.expected_recipients)
    }
    pub fn precision(&self) -> f64 {
        ratio(self.correct_reported, self.reported_recipients)
    }
    pub fn status_agreement(&self) -> f64 {
        ratio(self.status_agree, self.status_expected)
    }
    pub fn reason_agreement(&self) -> f64 {
        ratio(self.reason_agree, self.reason_expected)
    }
    /// What was given instead of `expected`, most often first.
    pub fn given_instead(&self, expected: &str) -> Vec<(&str, usize)> {
        let mut all: Vec<(&str, usize)> = self
            .reason_confusion
            .iter()
            .filter(|((want, _), _)| want == expected)
            .map(|((_, got), c)| (got.as_str(), *c))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        all
    }
    /// The `n` largest disagreements, largest first: (expected, got, count).
    pub fn top_confusions(&self, n: usize) -> Vec<(&str, &str, usize)> {
        let mut all: Vec<(&str, &str, usize)> = self
            .reason_confusion
            .iter()
            .map(|((want, got), c)| (want.as_str(), got.as_str(), *c))
            .collect();
        all.sort_by(|a, b| b.2.cmp(&a.2).then(a.cmp(b)));
        all.truncate(n);
        all
    }
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn lower_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Scores the classifier on the corpus at `root` (the folder holding
/// `expected.jsonl` and `emails/`), as a whole and per [`Half`]. Errors name
/// what is missing.
pub fn measure(root: &Path) -> Result<Measurement, String> {
    let expected_path = root.join("expected.jsonl");
    let expected = std::fs::read_to_string(&expected_path).map_err(|e| {
        format!(
            "corpus not readable at {} ({e}); {CORPUS_VAR} must name a folder holding expected.jsonl and emails/ (an absolute path)",
            expected_path.display()
        )
    })?;
    let mut m = Measurement::default();
    let mut inputs = Vec::new();
    for (n, line) in expected.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: Value = serde_json::from_str(line)
            .map_err(|err| format!("expected.jsonl line {}: {err}", n + 1))?;
        let file = e["file"].as_str().ok_or("entry without file")?.to_string();
        let raw = std::fs::read(root.join("emails").join(&file))
            .map_err(|err| format!("{file}: {err}"))?;
        inputs.push((e, file, raw));
    }
    let start = Instant::now();
    let results: Vec<Classification> = inputs.iter().map(|(_, _, raw)| classify(raw)).collect();
    m.all.elapsed = start.elapsed();
    for ((e, file, _), got) in inputs.iter().zip(&results) {
        let half = match Half::of(file) {
            Half::A => &mut m.a,
            Half::B => &mut m.b,
        };
        for f in [&mut m.all, half] {
            f.messages += 1;
            score(f, e, file, got);
        }
    }
    Ok(m)
}

fn score(f: &mut Figures, e: &Value, file: &str, got: &Classification) {
    let reason = e["reason"].as_str().unwrap_or("");
    let mut miss = |what: String| f.misses.push(format!("{file}: {what}"));
    match reason {
        "vacation" | "delivered" => {
            f.not_bounce_total += 1;
            if got.kind == Kind::Bounce || got.kind == Kind::Complaint {
                miss(format!("{reason} classified as {:?}", got.kind));
            } else {
                f.not_bounce_ok += 1;
            }
            return;
        }
        "feedback" => {
            f.arf_total += 1;
            if got.kind == Kind::Complaint {
                f.arf_complaint += 1;
            } else {
                miss(format!("feedback report classified as {:?}", got.kind));
            }
        }
        _ => {
            f.bounce_total += 1;
            if got.kind == Kind::Bounce {
                f.bounce_kind_ok += 1;
            } else {
                miss(format!("bounce classified as {:?}", got.kind));
            }
        }
    }

    let mut accepted = lower_list(&e["recipient"]);
    accepted.extend(lower_list(&e["recipient_alternates"]));
    accepted.extend(lower_list(&e["original_recipient"]));
    let alternates = lower_list(&e["recipient_alternates"]);
    let expected_recipients = lower_list(&e["recipient"]);
    let originals = lower_list(&e["original_recipient"]);
    let got_emails: Vec<String> = got
        .recipients
        .iter()
        .map(|r| r.email.to_ascii_lowercase())
        .collect();
    let find = |want: &str| {
        got.recipients
            .iter()
            .find(|r| r.email.eq_ignore_ascii_case(want))
            .or_else(|| {
                // An ambiguous sample: any alternate stands for the expected one.
                got.recipients
                    .iter()
                    .find(|r| alternates.contains(&r.email.to_ascii_lowercase()))
            })
    };

    let mut seen = Vec::new();
    for r in e["results"].as_array().into_iter().flatten() {
        let Some(want) = r["recipient"].as_str().map(str::to_ascii_lowercase) else {
            continue;
        };
        if seen.contains(&want) {
            continue;
        }
        seen.push(want.clone());
        f.expected_recipients += 1;
        // Sisimai names the Final-Recipient; the classifier names the
        // Original-Recipient when the DSN gives one (RFC 3464 §2.3.1: the
        // address the sender mailed, the one listmonk knows). That stands for
        // the expected recipient, unless it is itself an expected recipient.
        let via_original = || {
            got.recipients.iter().find(|r| {
                let email = r.email.to_ascii_lowercase();
                originals.contains(&email) && !expected_recipients.contains(&email)
            })
        };
        let hit = match find(&want) {
            Some(h) => Some(h),
            None => via_original().inspect(|_| f.found_via_original += 1),
        };
        match hit {
            Some(_) => f.found_recipients += 1,
            None => miss(format!("recipient {want} not found (got {got_emails:?})")),
        }
        if let Some(status) = r["status"].as_str() {
            let got_status = hit.and_then(|h| h.status.as_deref());
            if is_pseudo_status(status) {
                f.pseudo_status += 1;
                let got_class = hit.map(|h| match h.bounce_type {
                    BounceType::Hard => '5',
                    BounceType::Soft => '4',
                    BounceType::Complaint => '-',
                });
                if got_class == status.chars().next() {
                    f.pseudo_class_agree += 1;
                }
            } else {
                f.status_expected += 1;
                if got_status == Some(status) {
                    f.status_agree += 1;
                } else {
                    miss(format!("{want}: status {got_status:?}, expected {status}"));
                }
            }
        }
        let want_reason = r["reason"].as_str().unwrap_or("");
        if let Some(h) = hit
            && !NOT_BOUNCE_REASONS.contains(&want_reason)
        {
            let got_reason = h.reason.as_str();
            f.reason_expected += 1;
            let per = f
                .reason_by_expected
                .entry(want_reason.to_string())
                .or_default();
            per.0 += 1;
            if got_reason == want_reason {
                f.reason_agree += 1;
                per.1 += 1;
            } else {
                *f.reason_confusion
                    .entry((want_reason.to_string(), got_reason.to_string()))
                    .or_default() += 1;
                miss(format!(
                    "{want}: reason {got_reason}, expected {want_reason}"
                ));
            }
        }
        if r["hardbounce"].as_bool() == Some(true) {
            f.hard_total += 1;
            if hit.is_some_and(|h| h.bounce_type == BounceType::Hard) {
                f.hard_ok += 1;
            } else {
                miss(format!(
                    "{want}: expected hard ({}), got {:?}",
                    r["reason"].as_str().unwrap_or(""),
                    hit.map(|h| h.bounce_type)
                ));
            }
        }
    }
    for g in &got_emails {
        f.reported_recipients += 1;
        if accepted.contains(g) {
            f.correct_reported += 1;
        } else {
            miss(format!("extra recipient {g}"));
        }
    }
}

/// Sisimai's reasons for what is not a bounce; reason agreement leaves them out.
const NOT_BOUNCE_REASONS: [&str; 3] = ["feedback", "vacation", "delivered"];
