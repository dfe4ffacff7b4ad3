//! Owns finding the original message inside a report: embedded MIME parts
//! (message/rfc822, message/global, text/rfc822-headers, already decoded from
//! base64 or quoted-printable by mail-parser) and headers quoted in a
//! plain-text body; and, from them, listmonk's X-Listmonk-* UUIDs and the
//! original recipients.

use crate::address;
use crate::mime::{Fields, Mail, parse_fields};
use regex_lite::Regex;
use std::sync::LazyLock;

static LISTMONK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)x-listmonk-(subscriber|campaign)\s*:\s*<?\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
        .expect("static regex")
});

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
        for leaf in &mail.leaves {
            for c in LISTMONK.captures_iter(&leaf.text) {
                let slot = if c[1].eq_ignore_ascii_case("subscriber") {
                    &mut subscriber
                } else {
                    &mut campaign
                };
                if slot.is_none() {
                    *slot = Some(c[2].to_ascii_lowercase());
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
pub(crate) fn originals(mail: &Mail) -> Vec<Fields> {
    let mut out: Vec<Fields> = mail.embedded.clone();
    for leaf in mail.report_texts() {
        if leaf.ctype.starts_with("text/")
            && leaf.ctype != "text/rfc822-headers"
            && let Some(f) = quoted_headers(&leaf.text)
        {
            out.push(f);
        }
    }
    out
}

/// The To/Cc addresses of the original message, for reports that name no
/// recipient themselves.
pub(crate) fn original_recipients(mail: &Mail) -> Vec<String> {
    for fields in originals(mail) {
        let mut addrs: Vec<String> = Vec::new();
        for name in ["to", "x-hmxmroriginalrecipient", "delivered-to"] {
            for v in fields.all(name) {
                for (_, a) in address::find_all(v) {
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
            if !addrs.is_empty() {
                break;
            }
        }
        if !addrs.is_empty() {
            return addrs;
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
        if !QUOTED_NAMES.contains(&name.as_str()) {
            continue;
        }
        let mut known = 0;
        let mut block = String::new();
        for line in &lines[start..] {
            let stripped = line.strip_prefix(prefix).unwrap_or(line);
            if stripped.trim().is_empty() {
                break;
            }
            if let Some((_, n)) = header_name(stripped) {
                if QUOTED_NAMES.contains(&n.as_str()) {
                    known += 1;
                }
            } else if !stripped.starts_with([' ', '\t']) {
                break;
            }
            block.push_str(stripped);
            block.push('\n');
        }
        if known >= 3 {
            return Some(parse_fields(&block));
        }
    }
    None
}

/// The quoting prefix (`> `, indentation) and lower-cased field name of a
/// header-looking line.
fn header_name(line: &str) -> Option<(&str, String)> {
    let body = line.trim_start_matches(['>', '|', ' ', '\t']);
    let prefix = &line[..line.len() - body.len()];
    let colon = body.find(':')?;
    let name = &body[..colon];
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then(|| (prefix, name.to_ascii_lowercase()))
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
