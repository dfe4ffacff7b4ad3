//! Owns non-standard bounces: the human-readable reports of qmail, Exim,
//! Postfix, Sendmail, Exchange / Office 365, Gmail, Yahoo, courier and
//! others, recognised by structure (X-Failed-Recipients, MAILER-DAEMON
//! senders, bounce subjects) and well-known phrases; and, per failed
//! recipient, the paragraph that explains the failure.

use crate::address;
use crate::embedded;
use crate::mime::Mail;
use crate::status;
use crate::{BounceType, Recipient};

const SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "delivery notification",
    "delivery problem",
    "failure notice",
    "failure delivery",
    "failed delivery",
    "returned mail",
    "return mail",
    "returned to sender",
    "mail delivery failed",
    "mail delivery failure",
    "mail delivery system",
    "mail system error",
    "message not delivered",
    "could not be delivered",
    "could not send message",
    "nondeliverable",
    "non remis",
    "non recapitabile",
    "unzustellbar",
    "no se puede entregar",
    "rejected",
    "bounce",
    "error sending",
    "permanent error",
    "nicht zugestellt",
];

const BODY_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "could not deliver",
    "couldn't deliver",
    "could not be sent",
    "unable to deliver",
    "was not delivered",
    "wasn't delivered",
    "has not been delivered",
    "not been delivered",
    "delivery has failed",
    "delivery failed",
    "delivery to the following recipient",
    "this is a permanent error",
    "permanent fatal error",
    "the following address(es) failed",
    "the following addresses had",
    "i'm sorry to have to inform you",
    "this is the qmail-send program",
    "this is the mail system at",
    "message could not be delivered",
    "your message did not reach",
    "undeliverable",
    "undelivered mail",
    "returned mail",
    "delivery status notification",
    "mail delivery failed",
    "failed recipient",
    "user unknown",
    "unknown user",
    "no such user",
    "mailbox unavailable",
    "mailbox not found",
    "host not found",
    "not delivered to",
    "message you sent",
    "recipient address rejected",
    "deferred",
    "delayed",
    "could not be reached",
];

/// Phrases only bounce reports use: enough on their own, whoever sent them.
const DECISIVE: &[&str] = &[
    "this is the qmail-send program",
    "i'm afraid i wasn't able to deliver",
    "the following addresses had permanent",
    "the following address(es) failed",
    "could not be delivered to one or more",
    "did not reach the following recipient",
    "delivery to the following recipient",
    "delivery has failed to these recipients",
    "your message did not reach some or all",
    "this is the mail system at host",
    "i'm sorry to have to inform you that your message could not",
    "error message below:",
    "failed addresses follow",
    "your message cannot be delivered to the following",
    "message could not be delivered to the following",
    "this message was created automatically by mail delivery software",
    "a message that you sent could not be delivered",
    "unable to deliver message to the following",
];

/// With a MAILER-DAEMON / postmaster sender, any of these words is enough.
const FAILURE_WORDS: &[&str] = &[
    "fail",
    "error",
    "unknown",
    "reject",
    "undeliver",
    "not deliver",
    "returned",
    "refused",
    "denied",
    "unable",
    "could not",
    "couldn't",
    "invalid",
    "blocked",
    "expired",
    "quota",
];

/// Introductions of the list of failed recipients; addresses after them
/// are the failures, addresses before them are usually the sender's.
const LIST_INTROS: &[&str] = &[
    "following recipient",
    "following address",
    "following destination",
    "failed addresses",
    "addresses had permanent",
    "following e-mail address",
    "following email address",
    "delivery to the following",
    "could not be delivered to",
    "wasn't able to deliver your message to",
    "failed recipient",
];

/// Markers after which the report quotes the original message; addresses
/// past them belong to the original, not to the failure.
const ORIGINAL_MARKERS: &[&str] = &[
    "original message",
    "below this line is a copy of the message",
    "this is a copy of the message",
    "copy of the original message",
    "message headers follow",
    "returned message",
    "unsent message below",
    "header of the original message",
    "headers of the original message",
    "text of the message",
    "original message follows",
    "your message reads",
    "message text follows",
    "original mail follows",
    "the message you sent",
    "content-type: message/rfc822",
];

/// How sure the message is a bounce report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Evidence {
    None,
    /// A system sender or bounce subject with failure words: a bounce unless
    /// the message also says it is an auto-reply.
    Likely,
    /// X-Failed-Recipients, a delivery-status report type, or a phrase only
    /// bounce reports use.
    Certain,
}

/// Weighs the signs that the message is a bounce report.
pub(crate) fn bounce_evidence(mail: &Mail) -> Evidence {
    let body = report_text(mail).to_lowercase();
    if mail.headers.has("x-failed-recipients")
        || mail.report_type.as_deref() == Some("delivery-status")
        || DECISIVE.iter().any(|p| body.contains(p))
    {
        return Evidence::Certain;
    }
    let subject = mail.subject.to_lowercase();
    let subject_hit = SUBJECTS.iter().any(|s| subject.contains(s));
    // Return-Path <> alone is no sign: RFC 3834 asks auto-responders to use
    // the null sender too.
    let system_sender = ["from", "sender"].iter().any(|h| {
        mail.headers.get(h).is_some_and(|v| {
            let lower = v.to_ascii_lowercase();
            lower.contains("mailer-daemon")
                || lower.contains("mail delivery")
                || lower.contains("postmaster")
                || lower.contains("post_master")
                || lower.contains("mail administrator")
                || lower.contains("mailer_daemon")
                || address::find_all(v)
                    .iter()
                    .any(|(_, a)| address::is_system(a))
        })
    });
    let body_hit = BODY_PHRASES.iter().any(|p| body.contains(p));
    let failure_word = FAILURE_WORDS
        .iter()
        .any(|p| body.contains(p) || subject.contains(p));
    if (system_sender && (failure_word || body_hit)) || (subject_hit && body_hit) {
        Evidence::Likely
    } else {
        Evidence::None
    }
}

/// The report's own words: text parts of depth 0, cut where the quoted
/// original begins.
pub(crate) fn report_text(mail: &Mail) -> String {
    let mut out = String::new();
    for leaf in mail.report_texts() {
        if !leaf.ctype.starts_with("text/") || leaf.ctype == "text/rfc822-headers" {
            continue;
        }
        out.push_str(cut_original(&leaf.text));
        out.push('\n');
    }
    out
}

fn cut_original(text: &str) -> &str {
    let lower = text.to_ascii_lowercase();
    let mut cut = text.len();
    let mut offset = 0;
    for line in lower.split_inclusive('\n') {
        let marker = ORIGINAL_MARKERS.iter().any(|m| line.contains(m));
        // Only lines that look like a separator or a heading, not prose that
        // merely mentions "the original message".
        let t = line
            .trim()
            .trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        let heading = line.contains("--")
            || line.contains("==")
            || line.contains("__")
            || ORIGINAL_MARKERS.iter().any(|m| t.starts_with(m))
            || (t.ends_with(':') && t.len() < 80);
        if marker && heading {
            cut = offset;
            break;
        }
        offset += line.len();
    }
    // Also stop at a quoted header block (the original pasted inline).
    if let Some(pos) = quoted_block_start(&text[..cut]) {
        cut = cut.min(pos);
    }
    &text[..cut]
}

fn quoted_block_start(text: &str) -> Option<usize> {
    let mut offset = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line
            .trim_start_matches(['>', ' ', '\t'])
            .to_ascii_lowercase();
        if t.starts_with("received:")
            || t.starts_with("return-path:")
            || t.starts_with("message-id:")
        {
            let next_is_header = lines[i + 1..].iter().take(4).any(|l| {
                let n = l.trim_start_matches(['>', ' ', '\t']).to_ascii_lowercase();
                [
                    "from:",
                    "to:",
                    "date:",
                    "subject:",
                    "received:",
                    "message-id:",
                    "by ",
                ]
                .iter()
                .any(|p| n.starts_with(p))
            });
            if next_is_header {
                return Some(offset);
            }
        }
        offset += line.len();
    }
    None
}

/// Every failed recipient of a plain-text bounce, each with the diagnostic
/// paragraph and any status / reply code found near it.
pub(crate) fn recipients(mail: &Mail, delayed: bool) -> Vec<Recipient> {
    let text = report_text(mail);
    let mut excluded: Vec<String> = Vec::new();
    for h in [
        "from",
        "to",
        "sender",
        "return-path",
        "reply-to",
        "delivered-to",
        "cc",
    ] {
        for v in mail.headers.all(h) {
            excluded.extend(address::find_all(v).into_iter().map(|(_, a)| a));
        }
    }
    excluded.extend(embedded::original_senders(mail));

    let mut emails: Vec<String> = Vec::new();
    for v in mail.headers.all("x-failed-recipients") {
        for (_, a) in address::find_all(v) {
            if !emails.contains(&a) {
                emails.push(a);
            }
        }
    }
    if emails.is_empty() {
        emails = strong_candidates(&text);
    }
    if emails.is_empty() {
        emails = loose_candidates(&text, &excluded);
    }
    let mut text = text;
    if emails.is_empty() {
        // A bounce of a bounce (a gateway returning a report it could not
        // forward): the failure is described inside the embedded message.
        let inner: String = mail
            .leaves
            .iter()
            .filter(|l| l.depth == 1 && l.ctype.starts_with("text/"))
            .map(|l| format!("{}\n", cut_original(&l.text)))
            .collect();
        let mut inner_excluded = excluded.clone();
        if let Some(first) = mail.embedded.first() {
            for h in ["from", "to", "sender", "return-path", "reply-to"] {
                for v in first.all(h) {
                    inner_excluded.extend(address::find_all(v).into_iter().map(|(_, a)| a));
                }
            }
        }
        let lower = inner.to_ascii_lowercase();
        if DECISIVE.iter().any(|p| lower.contains(p)) {
            emails = strong_candidates(&inner);
            if emails.is_empty() {
                emails = loose_candidates(&inner, &inner_excluded);
            }
            if !emails.is_empty() {
                text = inner;
            }
        }
    }
    if emails.is_empty() {
        emails = embedded::original_recipients(mail)
            .into_iter()
            .filter(|a| !address::is_system(a))
            .collect();
    }
    let single = emails.len() == 1;
    emails
        .iter()
        .map(|email| describe(email, &emails, &text, single, delayed))
        .collect()
}

/// Every address of the report text that is not the sender's or a mail
/// system's, preferring those after the list introduction.
fn loose_candidates(text: &str, excluded: &[String]) -> Vec<String> {
    let mut emails: Vec<String> = Vec::new();
    let lower = text.to_ascii_lowercase();
    let list_start = LIST_INTROS
        .iter()
        .filter_map(|p| lower.find(p))
        .min()
        .unwrap_or(0);
    for pass_start in [list_start, 0] {
        for (pos, a) in address::find_all(text) {
            if pos >= pass_start
                && !on_id_line(text, pos)
                && !address::is_system(&a)
                && !excluded.contains(&a)
                && !emails.contains(&a)
            {
                emails.push(a);
            }
        }
        if !emails.is_empty() {
            break;
        }
    }
    emails
}

/// Message-IDs look like addresses; the header names around them say otherwise.
fn on_id_line(text: &str, pos: usize) -> bool {
    let line_start = text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..pos]
        .trim_start_matches(['>', ' ', '\t'])
        .to_ascii_lowercase();
    ["message-id:", "references:", "in-reply-to:", "content-id:"]
        .iter()
        .any(|h| line.starts_with(h))
}

/// Addresses in positions only a failed recipient takes: qmail's
/// `<address>:` paragraph opener and "Recipient address:" lines. These are
/// trusted even when the address is also the report's To (a sender
/// bouncing to itself).
fn strong_candidates(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let lower = t.to_ascii_lowercase();
        // `<a@b>:` (qmail), `"a@b":` (GMX), `a@b:` -- an address opening a
        // paragraph about itself.
        let bare = t.trim_end_matches(':').trim_matches(['<', '>', '"', '\'']);
        let opener = t.ends_with(':') && !bare.contains(char::is_whitespace) && bare.contains('@');
        let labelled = lower.starts_with("recipient address:") || lower.starts_with("rcpt to:");
        let qmail = opener;
        if qmail || labelled {
            for (_, a) in address::find_all(t) {
                if !address::is_system(&a) && !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn describe(email: &str, all: &[String], text: &str, single: bool, delayed: bool) -> Recipient {
    let email = email.to_string();
    let mut paragraph = paragraph_of(text, &email).unwrap_or_default();
    // Codes after the address belong to it; codes before it may belong to
    // the previous recipient of an Exim-style list, and whatever follows the
    // next recipient's address belongs to that one.
    let lower = paragraph.to_ascii_lowercase();
    let at = lower.find(&email).unwrap_or(0);
    let next = all
        .iter()
        .filter(|o| **o != email)
        .filter_map(|o| lower[at..].find(o.as_str()).map(|i| at + i))
        .min();
    if let Some(next) = next {
        let cut = lower[..next]
            .rfind('\n')
            .filter(|&c| c > at)
            .unwrap_or(next);
        paragraph.truncate(cut);
    }
    let mut at = at.min(paragraph.len());
    let lower = paragraph.to_ascii_lowercase();
    if all
        .iter()
        .any(|o| *o != email && lower[..at].contains(o.as_str()))
    {
        let line_start = lower[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
        paragraph.drain(..line_start);
        at -= line_start;
    }
    let (before, after) = paragraph.split_at(at);
    let mut status = status::find_status(after).or_else(|| status::find_status(before));
    let mut reply = status::find_reply_code(after).or_else(|| status::find_reply_code(before));
    if status.is_none() && reply.is_none() {
        // The paragraph names the address only; other lines about the same
        // address (a Sendmail transcript) or, for a lone recipient, the
        // whole report carry the code.
        let mentions = lines_mentioning(text, &email);
        status = status::find_status(&mentions);
        reply = status::find_reply_code(&mentions);
        if single && status.is_none() && reply.is_none() {
            status = status::find_status(text);
            reply = diagnostic_reply(text);
        }
    }
    let context = if paragraph.trim().is_empty() {
        text
    } else {
        &paragraph
    };
    let bounce_type = status::bounce_type(status.as_deref(), reply, context, delayed);
    let bounce_type =
        if bounce_type == BounceType::Soft || !status::is_mailbox_full(None, &paragraph) {
            bounce_type
        } else {
            BounceType::Soft
        };
    let diagnostic = squash(&paragraph);
    Recipient {
        email,
        status,
        action: None,
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
        bounce_type,
    }
}

/// The status the human-readable part gives for `email`, used when a DSN's
/// Status field is only the generic `x.0.0`.
pub(crate) fn status_near(text: &str, email: &str) -> Option<String> {
    let paragraph = paragraph_of(text, email)?;
    let at = paragraph.to_ascii_lowercase().find(email).unwrap_or(0);
    let (before, after) = paragraph.split_at(at);
    status::find_status(after).or_else(|| status::find_status(before))
}

/// A reply code taken from the whole report only where it opens an SMTP
/// response line, so dates and sizes are not mistaken for one.
fn diagnostic_reply(text: &str) -> Option<u16> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches(['<', '>', '#', ' ']);
            let lower = l.to_ascii_lowercase();
            let l = lower
                .find("said:")
                .map(|i| &l[i + 5..])
                .or_else(|| lower.find("smtp error").map(|_| l))
                .unwrap_or(l);
            status::find_reply_code(l.get(..l.len().min(12))?)
        })
        .next()
}

/// The paragraph (blank-line delimited, at most a few lines) holding the
/// first mention of `email`, plus the following paragraph when the mention
/// stands alone on its line (Exim and Sendmail indent the reason below).
fn paragraph_of(text: &str, email: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let pos = lower.find(email)?;
    let start = lower[..pos].rfind("\n\n").map(|i| i + 2).unwrap_or(0);
    let mut end = lower[pos..]
        .find("\n\n")
        .map(|i| pos + i)
        .unwrap_or(text.len());
    let line_start = lower[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = lower[pos..]
        .find('\n')
        .map(|i| pos + i)
        .unwrap_or(text.len());
    let line = lower[line_start..line_end].trim();
    let alone = line.trim_matches(['<', '>', ':', ' ', '"', '\'']) == email;
    if alone && end == line_end && end < text.len() {
        let rest = &lower[end..];
        let skip = rest.len() - rest.trim_start_matches('\n').len();
        let next = end + skip;
        end = lower[next..]
            .find("\n\n")
            .map(|i| next + i)
            .unwrap_or(text.len());
    }
    let start = start.max(pos.saturating_sub(400));
    let end = end.min(pos + 800).min(text.len());
    let start = floor_char(text, start);
    let end = floor_char(text, end);
    Some(text[start..end].to_string())
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn lines_mentioning(text: &str, email: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if l.to_ascii_lowercase().contains(email) {
            out.push_str(l);
            out.push('\n');
            if let Some(next) = lines.get(i + 1) {
                out.push_str(next);
                out.push('\n');
            }
        }
    }
    out
}

fn squash(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(500) {
        Some((i, _)) => joined[..i].to_string(),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmail() {
        let raw = b"From: MAILER-DAEMON@mx.example.org\nTo: news@sender.example\nSubject: failure notice\n\nHi. This is the qmail-send program at mx.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<kijitora@example.jp>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 <kijitora@example.jp>... User Unknown\nGiving up on 192.0.2.1.\n\n--- Below this line is a copy of the message.\n\nFrom: news@sender.example\nTo: kijitora@example.jp\n";
        let m = Mail::parse(raw);
        assert_eq!(bounce_evidence(&m), Evidence::Certain);
        let r = recipients(&m, false);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].email, "kijitora@example.jp");
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r[0].bounce_type, BounceType::Hard);
    }

    #[test]
    fn exim_with_x_failed_recipients() {
        let raw = b"From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nX-Failed-Recipients: a@example.net\nSubject: Mail delivery failed: returning message to sender\n\nThis message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a temporary error. The following address(es) deferred:\n\n  a@example.net\n    host mx.example.net [192.0.2.2]: 452 4.2.2 Mailbox full\n";
        let m = Mail::parse(raw);
        assert_eq!(bounce_evidence(&m), Evidence::Certain);
        let r = recipients(&m, false);
        assert_eq!(r[0].email, "a@example.net");
        assert_eq!(r[0].status.as_deref(), Some("4.2.2"));
        assert_eq!(r[0].bounce_type, BounceType::Soft);
    }

    #[test]
    fn ordinary_mail_is_not_a_bounce() {
        let m =
            Mail::parse(b"From: friend@example.org\nSubject: lunch?\n\nAre you free tomorrow?\n");
        assert_eq!(bounce_evidence(&m), Evidence::None);
    }
}
