//! Owns RFC 3464 delivery status notifications: the per-recipient field
//! groups of `message/delivery-status` (and `message/global-delivery-status`,
//! RFC 6533), including reports that put those fields in a text part.

use crate::address;
use crate::mime::{Mail, field_groups};
use crate::plaintext::starts_with_ci;
use crate::status;

/// One per-recipient group of a DSN.
#[derive(Debug, Default, Clone)]
pub(crate) struct Record {
    pub(crate) email: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) diagnostic: Option<String>,
    /// The comment after the Status code (`4.0.0 (host name lookup
    /// failure)`), which some MTAs write instead of a Diagnostic-Code.
    pub(crate) status_note: Option<String>,
}

impl Record {
    /// RFC 3464 §2.3.3: these actions mean the message went on, not back.
    /// `deliverable` is what Sendmail's verify mode (`-bv`) reports, and a
    /// 2.x.x status without an action says the same.
    pub(crate) fn is_success(&self) -> bool {
        match self.action.as_deref() {
            Some("delivered" | "relayed" | "expanded" | "deliverable") => true,
            Some(_) => false,
            None => self.status.as_deref().is_some_and(|s| s.starts_with('2')),
        }
    }

    pub(crate) fn is_delayed(&self) -> bool {
        self.action.as_deref() == Some("delayed")
    }
}

/// All per-recipient records of every delivery-status part. Empty when the
/// message is not a DSN.
pub(crate) fn records(mail: &Mail) -> Vec<Record> {
    let mut out = Vec::new();
    let dsn_parts: Vec<&str> = mail
        .leaves
        .iter()
        .filter(|l| {
            l.depth == 0
                && (l.ctype == "message/delivery-status"
                    || l.ctype == "message/global-delivery-status")
        })
        .map(|l| l.text())
        .collect();
    let texts: Vec<&str> = if dsn_parts.is_empty() {
        // Some MTAs send the DSN fields in a text/plain part, or the whole
        // report unstructured; accept it when a recipient field sits next to
        // an Action or Status field.
        mail.report_texts()
            .filter(|l| l.ctype.starts_with("text/") && l.ctype != "text/rfc822-headers")
            .map(|l| l.text())
            .filter(|t| looks_like_dsn_fields(t))
            .collect()
    } else {
        dsn_parts
    };
    for text in texts {
        out.extend(parse(text));
    }
    out
}

fn looks_like_dsn_fields(text: &str) -> bool {
    // No line can start with the field unless the text holds it somewhere.
    if crate::plaintext::find_ci(text, "final-recipient:").is_none() {
        return false;
    }
    let mut recipient = false;
    let mut action_or_status = false;
    for line in text.lines() {
        let l = line.trim_start();
        recipient |= starts_with_ci(l, "final-recipient:");
        action_or_status |= starts_with_ci(l, "action:") || starts_with_ci(l, "status:");
    }
    recipient && action_or_status
}

/// Parses the body of a delivery-status part into per-recipient records.
pub(crate) fn parse(text: &str) -> Vec<Record> {
    let mut out = Vec::new();
    for group in field_groups(text) {
        // Recipient groups are usually separated by blank lines, but some
        // MTAs run them together; a second recipient field starts a new record.
        let mut cur = Draft::default();
        for (name, value) in group.0 {
            match name.as_str() {
                "final-recipient" => {
                    if cur.final_rcpt.is_some() {
                        cur.finish(&mut out);
                    }
                    cur.final_rcpt = Some(value);
                    cur.after_final = false;
                }
                "original-recipient" => {
                    if cur.original.is_some() || cur.final_rcpt.is_some() && cur.after_final {
                        cur.finish(&mut out);
                    }
                    cur.original = Some(value);
                }
                "x-actual-recipient" => cur.actual = Some(value),
                "action" => {
                    cur.action = Some(value.trim().to_ascii_lowercase());
                    cur.after_final = cur.final_rcpt.is_some();
                }
                "status" => {
                    cur.status = Some(value);
                    cur.after_final = cur.final_rcpt.is_some();
                }
                "diagnostic-code" => {
                    cur.diagnostic = Some(value);
                    cur.after_final = cur.final_rcpt.is_some();
                }
                _ => {}
            }
        }
        cur.finish(&mut out);
    }
    out
}

#[derive(Default)]
struct Draft {
    final_rcpt: Option<String>,
    original: Option<String>,
    actual: Option<String>,
    action: Option<String>,
    status: Option<String>,
    diagnostic: Option<String>,
    /// A per-recipient field followed Final-Recipient, so an Original-Recipient
    /// now belongs to the next recipient.
    after_final: bool,
}

impl Draft {
    fn finish(&mut self, out: &mut Vec<Record>) {
        let d = std::mem::take(self);
        if d.final_rcpt.is_none() && d.original.is_none() {
            return;
        }
        let email = [&d.final_rcpt, &d.original, &d.actual]
            .into_iter()
            .flatten()
            .find_map(|v| address::first(after_type(v)));
        let diagnostic = d.diagnostic.map(|v| after_type(&v).trim().to_string());
        let status = status::dsn_status(d.status.as_deref(), diagnostic.as_deref());
        let status_note = d
            .status
            .as_deref()
            .and_then(|s| s.split_once('('))
            .map(|(_, note)| note.trim_end().trim_end_matches(')').trim().to_string())
            .filter(|note| !note.is_empty());
        out.push(Record {
            status_note,
            email,
            action: d
                .action
                .map(|a| a.split_whitespace().next().unwrap_or("").to_string()),
            status,
            diagnostic: diagnostic.filter(|d| !d.is_empty()),
        });
    }
}

/// Strips the address-type or diagnostic-type prefix (`rfc822;`, `smtp;`).
fn after_type(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest)) if kind.len() <= 16 && !kind.contains('@') => rest,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_recipient_groups() {
        let body = "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <a@example.com>... User unknown\n\nOriginal-Recipient: rfc822;B@example.com\nFinal-Recipient: rfc822; b@example.com\nAction: delayed\nStatus: 4.2.2\n";
        let r = parse(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].email.as_deref(), Some("a@example.com"));
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("550 5.1.1 <a@example.com>... User unknown")
        );
        assert!(r[1].is_delayed());
        assert_eq!(r[0].status_note, None);
    }

    #[test]
    fn status_comment_is_kept_as_a_note() {
        let r = parse(
            "Final-Recipient: rfc822; a@example.net\nAction: delayed\nStatus: 4.0.0 (example.net: host name lookup failure)\n",
        );
        assert_eq!(r[0].status.as_deref(), Some("4.0.0"));
        assert_eq!(
            r[0].status_note.as_deref(),
            Some("example.net: host name lookup failure")
        );
    }

    #[test]
    fn groups_without_blank_lines() {
        let body = "Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.0.0\nFinal-Recipient: rfc822; b@example.com\nAction: failed\nStatus: 5.1.1\n";
        let r = parse(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].email.as_deref(), Some("b@example.com"));
    }

    #[test]
    fn delivered_is_success() {
        let r = parse("Final-Recipient: rfc822; a@example.com\nAction: delivered\nStatus: 2.0.0\n");
        assert!(r[0].is_success());
    }
}
