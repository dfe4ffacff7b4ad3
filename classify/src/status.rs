//! Owns the permanent/transient decision: RFC 3463 status codes, SMTP reply
//! codes and well-known phrases to hard or soft.
//!
//! Mailbox full: some MTAs (Exchange, Yahoo, several Japanese carriers) report
//! 5.2.2 or a 552 for a full mailbox. We classify a full mailbox as soft in
//! every case: it is a state the recipient fixes by deleting mail, the address
//! itself is valid, and listmonk's soft rule (count, then act) still removes
//! an address that stays full.

use crate::BounceType;
use crate::phrases::Phrases;
use regex::Regex;
use std::sync::LazyLock;

static STATUS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)\b([245])\.(\d{1,3})\.(\d{1,3})\b").expect("static regex"));
static REPLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)\b([245][0-5][0-9])(?:[ -]|$)").expect("static regex"));

/// The first RFC 3463 status code in `text` (`5.1.1`), if any.
pub(crate) fn find_status(text: &str) -> Option<String> {
    statuses(text).next().map(str::to_string)
}

/// Every RFC 3463 status code in `text`, in order. Digits glued to a dot on
/// either side are part of an IP address or version, not a status.
pub(crate) fn find_statuses(text: &str) -> Vec<String> {
    statuses(text).map(str::to_string).collect()
}

fn statuses(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    // Every status holds a dot: skip the regex (and its per-call setup) on
    // text without one.
    let searched = if memchr::memchr(b'.', bytes).is_some() {
        text
    } else {
        ""
    };
    STATUS
        .find_iter(searched)
        .filter(move |m| {
            let before = m.start().checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(m.end()).copied();
            let after2 = bytes.get(m.end() + 1).copied();
            let glued_before = matches!(before, Some(b'.') | Some(b'-') | Some(b'/'));
            let glued_after = after == Some(b'.') && after2.is_some_and(|b| b.is_ascii_digit());
            !glued_before && !glued_after
        })
        .map(|m| m.as_str())
}

/// The status to report for a DSN recipient. The remote server's own code in
/// Diagnostic-Code is preferred to the reporting MTA's Status summary when
/// both agree on the class (Status is often a generic 5.0.0 or 4.4.7
/// "expired"); the last code wins because relays quote the original reply
/// last (`554 4.4.7 expired <421 4.4.2 timed out>`).
pub(crate) fn dsn_status(field: Option<&str>, diagnostic: Option<&str>) -> Option<String> {
    let field = field.and_then(find_status);
    let diag = diagnostic.and_then(|d| find_statuses(d).pop());
    match (field, diag) {
        (Some(f), Some(d)) if f.as_bytes()[0] == d.as_bytes()[0] => Some(d),
        (Some(f), _) => Some(f),
        (None, d) => d,
    }
}

/// The first SMTP reply code (`550`) in `text`, if any.
pub(crate) fn find_reply_code(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    // Every reply code starts with 2, 4 or 5: skip the regex (and its
    // per-call setup) on text without those digits.
    memchr::memchr3(b'2', b'4', b'5', bytes)?;
    REPLY.captures_iter(text).find_map(|c| {
        let m = c.get(1)?;
        let before = m.start().checked_sub(1).map(|i| bytes[i]);
        if matches!(
            before,
            Some(b'.') | Some(b'-') | Some(b'/') | Some(b':') | Some(b'#')
        ) {
            return None;
        }
        let code: u16 = m.as_str().parse().ok()?;
        (code >= 400).then_some(code)
    })
}

/// Phrases meaning the mailbox is full or the failure is temporary.
const SOFT: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "mailbox has exceeded",
    "mailbox size limit",
    "mailbox quota",
    "over quota",
    "overquota",
    "quota exceeded",
    "exceeded storage",
    "exceeds quota",
    "exceed the quota",
    "quota",
    "insufficient storage",
    "insufficient system storage",
    "user is over",
    "too many messages",
    "mailbox is over",
    "disk full",
    "try again later",
    "please try again",
    "temporarily",
    "temporary failure",
    "greylist",
    "graylist",
];

/// Phrases that only ever mean the address or its domain does not exist.
const HARD: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such mailbox",
    "no such recipient",
    "no such address",
    "mailbox not found",
    "mailbox unavailable",
    "mailbox does not exist",
    "user not found",
    "recipient not found",
    "unknown recipient",
    "recipient unknown",
    "recipient address rejected: user unknown",
    "address unknown",
    "invalid recipient",
    "invalid mailbox",
    "does not exist",
    "doesn't exist",
    "does not have an account",
    "is not a valid mailbox",
    "no mailbox here",
    "not a known user",
    "host not found",
    "host unknown",
    "unknown host",
    "domain not found",
    "no such domain",
    "unrouteable address",
    "unroutable address",
    "name service error",
    "no mx record",
    "account disabled",
    "account has been disabled",
    "account is disabled",
    "disabled account",
];

pub(crate) fn is_mailbox_full(status: Option<&str>, text: &str) -> bool {
    if status.is_some_and(|s| s.ends_with(".2.2")) {
        return true;
    }
    static FULL: LazyLock<Phrases> = LazyLock::new(|| {
        Phrases::new(&[
            "mailbox full",
            "mailbox is full",
            "over quota",
            "overquota",
            "quota exceeded",
            "exceeded storage",
            "mailbox size limit",
            "insufficient storage",
            "mailbox has exceeded",
            "exceeds quota",
            "quota",
            "disk full",
        ])
    });
    FULL.is_match(text)
}

/// Hard or soft for one failed recipient. `delayed` is true for
/// `Action: delayed` (the MTA is still trying, so never hard on its own).
pub(crate) fn bounce_type(
    status: Option<&str>,
    reply: Option<u16>,
    diagnostic: &str,
    delayed: bool,
) -> BounceType {
    if is_mailbox_full(status, diagnostic) {
        return BounceType::Soft;
    }
    if let Some(class) = status.and_then(|s| s.bytes().next()) {
        match class {
            b'5' => return BounceType::Hard,
            b'4' => return BounceType::Soft,
            _ => {}
        }
    }
    if let Some(code) = reply {
        return if code >= 500 {
            BounceType::Hard
        } else {
            BounceType::Soft
        };
    }
    static HARD_AC: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(HARD));
    static SOFT_AC: LazyLock<Phrases> = LazyLock::new(|| Phrases::new(SOFT));
    if HARD_AC.is_match(diagnostic) {
        return BounceType::Hard;
    }
    if delayed || SOFT_AC.is_match(diagnostic) {
        return BounceType::Soft;
    }
    // A failure report without any transient sign is the MTA giving up for
    // good: RFC 3464 `failed` and every plain-text "could not be delivered".
    BounceType::Hard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_find_what_aho_corasick_finds() {
        let texts = crate::automaton::tests::fixture_texts();
        crate::automaton::tests::agrees_on(HARD, &texts);
        crate::automaton::tests::agrees_on(SOFT, &texts);
    }

    #[test]
    fn status_code_not_taken_from_ip_or_version() {
        assert_eq!(find_status("from 192.5.1.1 via 8.12.8"), None);
        assert_eq!(
            find_status("550 5.1.1 <a@b.c>... User unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(find_status("Status: 4.4.7").as_deref(), Some("4.4.7"));
    }

    #[test]
    fn reply_code() {
        assert_eq!(find_reply_code("host mx said: 550 5.1.1 nope"), Some(550));
        assert_eq!(find_reply_code("421-4.7.0 try later"), Some(421));
        assert_eq!(find_reply_code("version 1.550"), None);
    }

    #[test]
    fn classes_and_phrases() {
        assert_eq!(
            bounce_type(Some("5.1.1"), None, "", false),
            BounceType::Hard
        );
        assert_eq!(
            bounce_type(Some("4.4.7"), None, "", false),
            BounceType::Soft
        );
        assert_eq!(bounce_type(None, Some(550), "", false), BounceType::Hard);
        assert_eq!(
            bounce_type(None, None, "No such user here", false),
            BounceType::Hard
        );
        assert_eq!(bounce_type(None, None, "", true), BounceType::Soft);
        assert_eq!(bounce_type(None, None, "", false), BounceType::Hard);
    }

    #[test]
    fn mailbox_full_is_soft_even_with_permanent_status() {
        assert_eq!(
            bounce_type(Some("5.2.2"), Some(552), "Mailbox full", false),
            BounceType::Soft
        );
        assert_eq!(
            bounce_type(Some("5.0.0"), None, "user is over quota", false),
            BounceType::Soft
        );
    }
}
