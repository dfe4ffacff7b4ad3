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
    /// The recipient as the sender gave it: the Original-Recipient when it is
    /// a valid rfc822 address (RFC 3464 §2.3.1), else the Final-Recipient.
    pub(crate) email: Option<String>,
    /// The Final-Recipient, when `email` is an Original-Recipient that differs
    /// from it (an alias or forward rewrote the address).
    pub(crate) final_email: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) diagnostic: Option<String>,
    /// The Remote-MTA field: the server that refused the message, by name or address.
    pub(crate) remote_mta: Option<String>,
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
                "remote-mta" => {
                    cur.remote_mta = Some(value);
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
    remote_mta: Option<String>,
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
        let final_email = d
            .final_rcpt
            .as_deref()
            .and_then(|v| address::first(after_type(v)));
        // The address the sender mailed (listmonk looks its subscriber up by
        // it), when the MTA kept it; an alias may have rewritten the final one.
        let original = d.original.as_deref().and_then(rfc822_address);
        let email = original.clone().or_else(|| {
            [&d.final_rcpt, &d.original, &d.actual]
                .into_iter()
                .flatten()
                .find_map(|v| address::first(after_type(v)))
        });
        let final_email = final_email.filter(|f| original.as_ref().is_some_and(|o| o != f));
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
            final_email,
            action: d
                .action
                .map(|a| a.split_whitespace().next().unwrap_or("").to_string()),
            status,
            diagnostic: diagnostic.filter(|d| !d.is_empty()),
            remote_mta: d
                .remote_mta
                .map(|v| after_type(&v).trim().to_string())
                .filter(|v| !v.is_empty()),
        });
    }
}

/// The address of an `rfc822; address` field value (type case-insensitive),
/// when the value is exactly one valid address; `None` for other address
/// types (`x400;`, `unknown;`), an untyped value and anything malformed.
/// Exchange's `IMCEA...@domain` are other address types (X.500, EX) wrapped
/// in rfc822 syntax, never an address a sender mailed: `None` too.
fn rfc822_address(value: &str) -> Option<String> {
    let (kind, addr) = value.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    address::exact(addr).filter(|a| !a.starts_with("imcea"))
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

    /// The address each record reports, in order.
    fn emails(body: &str) -> Vec<String> {
        parse(body)
            .into_iter()
            .map(|r| r.email.unwrap_or_default())
            .collect()
    }

    #[test]
    fn original_recipient_is_the_address_that_was_mailed() {
        // Postfix writes Final-Recipient first, Exchange Original-Recipient first.
        for body in [
            "Final-Recipient: rfc822; emma.watts@backend.example.com\nOriginal-Recipient: rfc822;emma@example.com\nAction: failed\nStatus: 5.1.1\n",
            "Original-Recipient: rfc822;emma@example.com\nFinal-Recipient: rfc822; emma.watts@backend.example.com\nAction: failed\nStatus: 5.1.1\n",
        ] {
            let r = parse(body);
            assert_eq!(r.len(), 1, "{body}");
            assert_eq!(r[0].email.as_deref(), Some("emma@example.com"), "{body}");
            assert_eq!(
                r[0].final_email.as_deref(),
                Some("emma.watts@backend.example.com")
            );
        }
    }

    #[test]
    fn original_recipient_type_is_case_insensitive_and_spacing_free() {
        for original in [
            "RFC822; Emma@Example.COM",
            "Rfc822 ;emma@example.com",
            "rfc822;  <emma@example.com> ",
        ] {
            let body = format!(
                "Final-Recipient: rfc822; emma.watts@backend.example.com\nOriginal-Recipient: {original}\nAction: failed\nStatus: 5.1.1\n"
            );
            assert_eq!(emails(&body), ["emma@example.com"], "{original}");
        }
    }

    #[test]
    fn unusable_original_recipient_falls_back_to_final_recipient() {
        for original in [
            "x400; /C=FR/ADMD=ATLAS/PRMD=EXAMPLE/S=WATTS/",
            "unknown; emma@example.com",
            "emma@example.com",
            "<emma@example.com>",
            "rfc822; emma",
            "rfc822; <>",
            "rfc822;",
            "rfc822; emma@example.com, ben@example.com",
            "rfc822; @relay.example.net:emma@example.com",
            "rfc822; IMCEAEX-_o=Org_ou=Group_cn=Recipients_cn=emma@example.com",
        ] {
            let body = format!(
                "Final-Recipient: rfc822; emma.watts@backend.example.com\nOriginal-Recipient: {original}\nAction: failed\nStatus: 5.1.1\n"
            );
            let r = parse(&body);
            assert_eq!(r.len(), 1, "{original}");
            assert_eq!(
                r[0].email.as_deref(),
                Some("emma.watts@backend.example.com"),
                "{original}"
            );
            assert_eq!(r[0].final_email, None, "{original}");
        }
    }

    #[test]
    fn original_recipient_alone_is_still_read() {
        // McAfee writes an untyped Original-Recipient and no Final-Recipient.
        assert_eq!(
            emails(
                "Original-Recipient: <kijitora@example.or.jp>\nAction: failed\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n"
            ),
            ["kijitora@example.or.jp"]
        );
        // A Final-Recipient the address pattern cannot read (a source route to
        // a dotless host) leaves the Original-Recipient.
        assert_eq!(
            emails(
                "Original-recipient: rfc822;kijitora@example.net\nFinal-recipient: rfc822;@smtp.example.net:kijitora@server\nAction: failed\nStatus: 5.2.0\n"
            ),
            ["kijitora@example.net"]
        );
    }

    #[test]
    fn original_recipient_equal_to_final_is_no_rewrite() {
        let r = parse(
            "Original-Recipient: rfc822;Kijitora@example.jp\nFinal-Recipient: rfc822; kijitora@example.jp\nAction: failed\nStatus: 5.1.1\n",
        );
        assert_eq!(r[0].email.as_deref(), Some("kijitora@example.jp"));
        assert_eq!(r[0].final_email, None);
    }

    #[test]
    fn original_recipient_stays_with_its_own_group() {
        // Only the second recipient was rewritten; the first keeps its final
        // address, with and without blank lines between the groups.
        for sep in ["\n", ""] {
            let body = format!(
                "Final-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\n{sep}Final-Recipient: rfc822; b.final@backend.example.com\nOriginal-Recipient: rfc822;b@example.com\nAction: failed\nStatus: 5.2.2\n{sep}Final-Recipient: rfc822; c@example.com\nAction: delayed\nStatus: 4.4.1\n"
            );
            let r = parse(&body);
            assert_eq!(
                emails(&body),
                ["a@example.com", "b@example.com", "c@example.com"],
                "{sep:?}"
            );
            assert_eq!(r[1].status.as_deref(), Some("5.2.2"));
            assert_eq!(r[0].final_email, None);
            assert_eq!(r[2].final_email, None);
        }
        // Original-Recipient first in each group, run together.
        let body = "Original-Recipient: rfc822;a@example.com\nFinal-Recipient: rfc822; a.final@backend.example.com\nAction: failed\nStatus: 5.1.1\nFinal-Recipient: rfc822; b@example.com\nAction: failed\nStatus: 5.1.1\n";
        assert_eq!(emails(body), ["a@example.com", "b@example.com"]);
    }

    #[test]
    fn delivered_is_success() {
        let r = parse("Final-Recipient: rfc822; a@example.com\nAction: delivered\nStatus: 2.0.0\n");
        assert!(r[0].is_success());
    }
}
