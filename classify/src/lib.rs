//! Bounce classification for BounceOps: raw message bytes in, a
//! [`Classification`] out (kind, failed recipients with DSN status, action,
//! diagnostic and hard/soft, and listmonk's subscriber/campaign UUIDs).
//!
//! Pure and total: no I/O, and every input, however broken, gets a result.
//! This module owns the order in which the detectors are consulted; each
//! detector lives in its own module.

pub mod address;
mod arf;
mod automaton;
mod autoreply;
mod bounds;
mod command;
mod dsn;
mod embedded;
mod header_lines;
mod mime;
mod phrases;
mod plaintext;
pub mod reason;
pub mod ses;
mod status;
mod unread;
mod unread_html;

pub use reason::{Reason, Side};
use serde::Serialize;
use std::borrow::Cow;

/// What a message is, as far as bounce processing cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A delivery failure (permanent or transient).
    Bounce,
    /// An abuse / spam complaint (ARF feedback report).
    Complaint,
    /// An RFC 3834 automatic reply (vacation, out of office): not a bounce.
    Autoreply,
    /// A success report (DSN action delivered / relayed / expanded): not a bounce.
    Delivery,
    /// Anything else (a human reply, spam, unreadable input).
    Unknown,
}

/// listmonk's bounce types: the one enum of them, which the worker's events carry too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceType {
    Hard,
    Soft,
    Complaint,
}

impl BounceType {
    /// The name listmonk's `bounce_type` column and API use.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceType::Soft => "soft",
            BounceType::Hard => "hard",
            BounceType::Complaint => "complaint",
        }
    }

    pub fn parse(s: &str) -> Option<BounceType> {
        match s {
            "soft" => Some(BounceType::Soft),
            "hard" => Some(BounceType::Hard),
            "complaint" => Some(BounceType::Complaint),
            _ => None,
        }
    }
}

/// One failed (or complaining) recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// Lower-cased address.
    pub email: String,
    /// RFC 3463 status (`5.1.1`) as reported, if any.
    pub status: Option<String>,
    /// RFC 3464 action (`failed`, `delayed`), for DSNs.
    pub action: Option<String>,
    /// The MTA's explanation (Diagnostic-Code or the report's paragraph).
    pub diagnostic: Option<String>,
    #[serde(rename = "type")]
    pub bounce_type: BounceType,
    /// Why it failed (`feedback` for a complaint); see `docs/reasons.md`.
    pub reason: Reason,
    /// The server that refused the message (a DSN's Remote-MTA), where the report names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
}

impl Recipient {
    fn complaint(email: String) -> Recipient {
        Recipient {
            email,
            status: None,
            action: None,
            diagnostic: None,
            bounce_type: BounceType::Complaint,
            reason: Reason::Feedback,
            remote_mta: None,
        }
    }
}

/// The result of [`classify`]. `recipients` is empty for auto-replies,
/// delivery reports and unknown mail, so a caller that records every
/// recipient can never count those as bounces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub kind: Kind,
    pub recipients: Vec<Recipient>,
    pub subscriber_uuid: Option<String>,
    pub campaign_uuid: Option<String>,
    /// The report named more than [`MAX_RECIPIENTS`] recipients: `recipients`
    /// is empty, and none of them was looked at further.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub too_many_recipients: bool,
}

/// Most recipients one report may name and still have them given. A real
/// report names the recipients of one message that failed: listmonk sends a
/// message per subscriber, MTAs take at most 1,000 recipients per message by
/// default (Postfix's `smtpd_recipient_limit`), and the corpus's largest
/// report names 7. A message naming more is one made to blocklist a list
/// wholesale, or no report at all; and describing each of them (a 10 MiB
/// report can name 137,000 addresses) took the classifier past 250 MB.
pub const MAX_RECIPIENTS: usize = 1000;

/// A report naming more than [`MAX_RECIPIENTS`] addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

/// What a detector found: the recipients, or [`TooMany`] of them.
type Found = Result<Vec<Recipient>, TooMany>;

/// Whether `items` name more than [`MAX_RECIPIENTS`] distinct addresses
/// (`address` gives each item's): checked before anything is read about each.
pub(crate) fn too_many<T>(items: &[T], address: impl Fn(&T) -> &str) -> bool {
    items.len() > MAX_RECIPIENTS
        && items
            .iter()
            .map(address)
            .collect::<std::collections::HashSet<&str>>()
            .len()
            > MAX_RECIPIENTS
}

/// Classifies one raw message (RFC 5322 bytes, any line endings).
pub fn classify(raw: &[u8]) -> Classification {
    classify_with(raw, mime::Mail::parse_with)
}

/// `classify`, the message read by `parse` (the raw message, and whether
/// every part of an alternative is read).
fn classify_with(raw: &[u8], parse: impl Fn(&[u8], bool) -> mime::Mail) -> Classification {
    let normalized = normalize_newlines(raw);
    let bounded = bounds::bounded(&normalized);
    let mail = parse(bounded, false);
    let first = classify_mail(&mail);
    if first.recipients.is_empty() && !first.too_many_recipients && mail.skipped_alternative {
        // The plain alternatives named no failed recipient: look at the HTML ones too.
        let second = classify_mail(&parse(bounded, true));
        if !second.recipients.is_empty() || second.too_many_recipients {
            return second;
        }
    }
    first
}

fn classify_mail(mail: &mime::Mail) -> Classification {
    let (mut subscriber_uuid, mut campaign_uuid) = embedded::listmonk_ids(mail);
    let (kind, found) = match ses::parse(mail) {
        Some(n) if n.kind != Kind::Unknown => {
            subscriber_uuid = subscriber_uuid.or(n.subscriber);
            campaign_uuid = campaign_uuid.or(n.campaign);
            (n.kind, n.recipients)
        }
        _ => decide(mail),
    };
    let too_many_recipients = found.is_err();
    Classification {
        kind,
        recipients: found.unwrap_or_default(),
        subscriber_uuid,
        campaign_uuid,
        too_many_recipients,
    }
}

/// The detectors, most specific first: a feedback report is a complaint even
/// though it is a multipart/report; a DSN is a bounce even when it carries
/// `Auto-Submitted: auto-replied`; phrases come last because they guess.
fn decide(mail: &mime::Mail) -> (Kind, Found) {
    if arf::is_feedback(mail) {
        let emails = arf::recipients(mail);
        if too_many(&emails, String::as_str) {
            return (Kind::Complaint, Err(TooMany));
        }
        let recipients = emails.into_iter().map(Recipient::complaint).collect();
        return (Kind::Complaint, Ok(recipients));
    }

    let records = dsn::records(mail);
    if !records.is_empty() {
        let failed: Vec<&dsn::Record> = records.iter().filter(|r| !r.is_success()).collect();
        if failed.is_empty() {
            return (Kind::Delivery, Ok(Vec::new()));
        }
        let single = failed.len() == 1;
        // Addresses the message reached. An alias that expanded one address
        // into several repeats its Original-Recipient in each of them: when one
        // was delivered, the address that was mailed did not bounce, and the
        // failed ones are reported under their own (final) addresses.
        let reached: std::collections::HashSet<&str> = records
            .iter()
            .filter(|r| r.is_success())
            .filter_map(|r| r.email.as_deref())
            .collect();
        let (failed, emails): (Vec<&dsn::Record>, Vec<String>) = failed
            .into_iter()
            .filter_map(|r| match (&r.email, &r.final_email) {
                (Some(e), Some(f)) if reached.contains(e.as_str()) => Some((r, f.clone())),
                (Some(e), _) => Some((r, e.clone())),
                (None, _) => None,
            })
            .unzip();
        if too_many(&emails, String::as_str) {
            return (Kind::Bounce, Err(TooMany));
        }
        let mut recipients: Vec<Recipient> = Vec::new();
        // Where each address is in `recipients`.
        let mut reported: std::collections::HashMap<String, usize> = Default::default();
        // Read for a missing or generic status, and for the reason of a lone
        // recipient whose diagnostic names no cause; built on first use.
        let text = || plaintext::report_text(mail);
        // A report of many recipients is searched for all of them at once
        // (`plaintext::Mentions`): one search of the whole report each took
        // time in the square of their number. The texts read are the same.
        let index = std::cell::OnceCell::new();
        let status_near = |i: usize| {
            index
                .get_or_init(|| plaintext::Mentions::new(text(), &emails))
                .status_near(i)
        };
        let commands = plaintext::CommandsInReport::new(mail, &emails);
        for (i, r) in failed.into_iter().enumerate() {
            let email = emails[i].clone();
            // `x.0.0` says only "permanent" or "transient"; the report's own
            // words often name the real code for the same class.
            let status = match r.status.as_deref() {
                Some(s) if s.ends_with(".0.0") => status_near(i)
                    .filter(|n| n.as_bytes()[0] == s.as_bytes()[0])
                    .or_else(|| r.status.clone()),
                Some(_) => r.status.clone(),
                None => status_near(i),
            };
            let diagnostic = r.diagnostic.clone().unwrap_or_default();
            let reply = status::find_reply_code(&diagnostic);
            let recipient = Recipient {
                bounce_type: status::bounce_type(
                    status.as_deref(),
                    reply,
                    &diagnostic,
                    r.is_delayed(),
                ),
                reason: reason::decide_with_report(
                    status.as_deref(),
                    reply,
                    r.diagnostic
                        .as_deref()
                        .or(r.status_note.as_deref())
                        .unwrap_or(""),
                    r.is_delayed(),
                    r.remote_mta.as_deref(),
                    || single.then(text),
                    // Only this recipient's paragraph: the rest of a report
                    // can quote other sessions (a Sendmail transcript of a
                    // retry, another recipient's refusal).
                    || commands.command(i),
                ),
                email,
                status,
                action: r.action.clone(),
                diagnostic: r.diagnostic.clone(),
                remote_mta: r.remote_mta.clone(),
            };
            // One address reported twice (an alias expanded into several
            // recipients that all failed, or an MTA repeating itself) is
            // reported once, by its worst record.
            match reported.get(&recipient.email) {
                Some(&k) if severity(&recipient) > severity(&recipients[k]) => {
                    recipients[k] = recipient
                }
                Some(_) => {}
                None => {
                    reported.insert(recipient.email.clone(), recipients.len());
                    recipients.push(recipient);
                }
            }
        }
        if recipients.is_empty() {
            return (
                Kind::Bounce,
                plaintext::recipients(mail, is_delay_notice(mail)),
            );
        }
        return (Kind::Bounce, Ok(recipients));
    }

    let evidence = plaintext::bounce_evidence(mail);
    if autoreply::is_strong(mail) && evidence < plaintext::Evidence::Certain {
        return (Kind::Autoreply, Ok(Vec::new()));
    }
    if evidence > plaintext::Evidence::None {
        return (
            Kind::Bounce,
            plaintext::recipients(mail, is_delay_notice(mail)),
        );
    }
    if autoreply::is_weak(mail) {
        return (Kind::Autoreply, Ok(Vec::new()));
    }
    (Kind::Unknown, Ok(Vec::new()))
}

/// How bad a failure is, for keeping the worst of one address's records:
/// hard over soft, then a final failure over a delay.
fn severity(r: &Recipient) -> (bool, bool) {
    (
        r.bounce_type == BounceType::Hard,
        r.action.as_deref() != Some("delayed"),
    )
}

/// A "still trying" warning rather than a final failure.
fn is_delay_notice(mail: &mime::Mail) -> bool {
    let subject = mail.subject.to_ascii_lowercase();
    if subject.contains("delay") || subject.starts_with("warning") {
        return true;
    }
    // Any of `plaintext::STILL_TRYING`, ASCII case-insensitively, found while
    // the report text was built.
    plaintext::report_lists(mail) & plaintext::HAS_STILL_TRYING != 0
}

/// CR-only (classic Mac) and CRLF line endings become LF, so mail-parser and
/// the line-oriented detectors see one convention.
/// Input that is already LF-only (most mail) is passed through uncopied.
fn normalize_newlines(raw: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\r', raw).is_none() {
        return Cow::Borrowed(raw);
    }
    // Copy the runs between CRs whole rather than byte by byte.
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(cr) = memchr::memchr(b'\r', &raw[i..]) {
        out.extend_from_slice(&raw[i..i + cr]);
        out.push(b'\n');
        i += cr + 1;
        if raw.get(i) == Some(&b'\n') {
            i += 1;
        }
    }
    out.extend_from_slice(&raw[i..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
