//! Owns finding the original message inside a report: embedded MIME parts
//! (message/rfc822, message/global, text/rfc822-headers, already decoded from
//! base64 or quoted-printable by mail-parser) and headers quoted in a
//! plain-text body; and, from them, listmonk's X-Listmonk-* UUIDs and the
//! original recipients.

use crate::address;
use crate::mime::{Fields, Mail, parse_fields};
use crate::phrases::Search;
use regex::Regex;
use std::sync::LazyLock;

const LISTMONK_PATTERN: &str = r"(?i-u)x-listmonk-(subscriber|campaign)\s*:\s*<?\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})";
static LISTMONK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(LISTMONK_PATTERN).expect("static regex"));
static LISTMONK_BYTES: LazyLock<regex::bytes::Regex> =
    LazyLock::new(|| regex::bytes::Regex::new(LISTMONK_PATTERN).expect("static regex"));
static LISTMONK_WORD: LazyLock<Search> = LazyLock::new(|| Search::rare(&["x-listmonk-"]));

/// listmonk's subscriber and campaign UUIDs, wherever the original's headers
/// survive: as parsed header fields first, then anywhere in decoded text
/// (quoted originals, indented or `>`-prefixed copies).
pub(crate) fn listmonk_ids(mail: &Mail) -> (Option<String>, Option<String>) {
    let mut subscriber = None;
    let mut campaign = None;
    let from_fields = mail.embedded.iter().chain(std::iter::once(&mail.headers));
    for fields in from_fields {
        for (name, value) in &fields.0 {
            let slot = match name.as_str() {
                "x-listmonk-subscriber" => &mut subscriber,
                "x-listmonk-campaign" => &mut campaign,
                _ => continue,
            };
            if slot.is_none() {
                *slot = uuid_in(value);
            }
        }
    }
    if subscriber.is_none() || campaign.is_none() {
        for leaf in mail.leaves.iter().filter(|l| l.may_contain(&LISTMONK_WORD)) {
            // Binary parts are searched as bytes: the same matches as in
            // their lossy text, without making it.
            let found: Vec<(bool, String)> = match leaf.text_or_bytes() {
                Ok(text) => LISTMONK
                    .captures_iter(text)
                    .map(|c| {
                        (
                            c[1].eq_ignore_ascii_case("subscriber"),
                            c[2].to_ascii_lowercase(),
                        )
                    })
                    .collect(),
                Err(bytes) => LISTMONK_BYTES
                    .captures_iter(bytes)
                    .map(|c| {
                        (
                            c[1].eq_ignore_ascii_case(b"subscriber"),
                            String::from_utf8_lossy(&c[2]).to_ascii_lowercase(),
                        )
                    })
                    .collect(),
            };
            for (is_subscriber, uuid) in found {
                let slot = if is_subscriber {
                    &mut subscriber
                } else {
                    &mut campaign
                };
                if slot.is_none() {
                    *slot = Some(uuid);
                }
            }
        }
    }
    (subscriber, campaign)
}

fn uuid_in(value: &str) -> Option<String> {
    LISTMONK
        .captures(&format!("x-listmonk-subscriber: {}", value.trim()))
        .map(|c| c[2].to_ascii_lowercase())
}

/// Header blocks of the original message: embedded parts first, then blocks
/// quoted in the report's own text parts.
pub(crate) fn originals(mail: &Mail) -> impl Iterator<Item = &Fields> {
    // The quoted blocks are found once per message (several detectors ask).
    let quoted = mail.quoted.get_or_init(|| {
        mail.report_texts()
            .filter(|leaf| leaf.ctype.starts_with("text/") && leaf.ctype != "text/rfc822-headers")
            .filter_map(|leaf| quoted_headers(leaf.text()))
            .collect()
    });
    mail.embedded.iter().chain(quoted.iter())
}

/// The To/Cc addresses of the original message, for reports that name no
/// recipient themselves.
pub(crate) fn original_recipients(mail: &Mail) -> Vec<String> {
    for fields in originals(mail) {
        let mut addrs = address::Distinct::default();
        for name in ["to", "x-hmxmroriginalrecipient", "delivered-to"] {
            for v in fields.all(name) {
                for (_, a) in address::find_all(v) {
                    addrs.push(a);
                }
            }
            if !addrs.is_empty() {
                break;
            }
        }
        if !addrs.is_empty() {
            return addrs.into_vec();
        }
    }
    Vec::new()
}

/// The sender of the original message (never a failed recipient).
pub(crate) fn original_senders(mail: &Mail) -> Vec<String> {
    let mut out = Vec::new();
    for fields in originals(mail) {
        for name in ["from", "return-path", "sender", "reply-to"] {
            for v in fields.all(name) {
                out.extend(address::find_all(v).into_iter().map(|(_, a)| a));
            }
        }
    }
    out
}

const QUOTED_NAMES: &[&str] = &[
    "return-path",
    "received",
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "delivered-to",
    "reply-to",
    "x-mailer",
    "dkim-signature",
    "sender",
    "x-listmonk-subscriber",
    "x-listmonk-campaign",
    "list-unsubscribe",
];

/// Finds a run of header lines quoted inside a plain-text report (after
/// "----- Original message -----" and similar) and parses it. The run must
/// hold at least three well-known header names so prose that happens to
/// contain "To:" is not mistaken for headers.
pub(crate) fn quoted_headers(text: &str) -> Option<Fields> {
    let lines: Vec<&str> = text.lines().collect();
    for start in 0..lines.len() {
        let (prefix, name) = match header_name(lines[start]) {
            Some(x) => x,
            None => continue,
        };
        if !is_quoted_name(name) {
            continue;
        }
        let mut known = 0;
        let mut end = start;
        for line in &lines[start..] {
            let stripped = line.strip_prefix(prefix).unwrap_or(line);
            if stripped.trim().is_empty() {
                break;
            }
            if let Some((_, n)) = header_name(stripped) {
                if is_quoted_name(n) {
                    known += 1;
                }
            } else if !stripped.starts_with([' ', '\t']) {
                break;
            }
            end += 1;
        }
        if known >= 3 {
            // The block is copied out only for the run that qualifies.
            let mut block = String::new();
            for line in &lines[start..end] {
                block.push_str(line.strip_prefix(prefix).unwrap_or(line));
                block.push('\n');
            }
            return Some(parse_fields(&block));
        }
    }
    None
}

fn is_quoted_name(name: &str) -> bool {
    QUOTED_NAMES.iter().any(|q| q.eq_ignore_ascii_case(name))
}

/// The quoting prefix (`> `, indentation) and field name (as written; compare
/// with `eq_ignore_ascii_case`) of a header-looking line.
fn header_name(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start_matches(['>', '|', ' ', '\t']);
    let prefix = &line[..line.len() - body.len()];
    // A valid name is at most 40 bytes, so a colon further on (or none)
    // rejects the line alike; only the line's head is searched.
    let head = &body.as_bytes()[..body.len().min(41)];
    let colon = memchr::memchr(b':', head)?;
    let name = &body[..colon];
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some((prefix, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "5c3ab9d1-1111-4a2b-9c3d-0123456789ab";
    const CAMP: &str = "0f0e0d0c-2222-4b3c-8d4e-abcdefabcdef";

    #[test]
    fn ids_in_plain_quoted_body() {
        let raw = format!(
            "From: MAILER-DAEMON@x.org\nSubject: failure notice\n\n<a@b.org>:\nNo such user\n\n--- Below this line is a copy of the message.\n\nTo: a@b.org\nX-Listmonk-Subscriber: {SUB}\n> X-Listmonk-Campaign: <{}>\n",
            CAMP.to_uppercase()
        );
        let mail = Mail::parse(raw.as_bytes());
        let (s, c) = listmonk_ids(&mail);
        assert_eq!(s.as_deref(), Some(SUB));
        assert_eq!(c.as_deref(), Some(CAMP));
    }

    #[test]
    fn quoted_header_block_needs_known_names() {
        assert!(quoted_headers("Please reply To: me\nthanks").is_none());
        let f = quoted_headers("blah\n\n   From: s@x.org\n   To: r@y.org\n   Subject: hi\n\nbody")
            .unwrap();
        assert_eq!(f.get("to"), Some("r@y.org"));
    }
}
