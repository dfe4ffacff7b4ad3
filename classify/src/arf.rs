//! Owns complaint recognition: RFC 5965 ARF feedback reports
//! (`multipart/report; report-type=feedback-report`) and the older Hotmail
//! JMRP form (the complained-about message forwarded with
//! `X-HmXmrOriginalRecipient`), and who complained.

use crate::address;
use crate::embedded;
use crate::mime::{Mail, parse_fields};

/// True when the message is a feedback (abuse/complaint) report.
pub(crate) fn is_feedback(mail: &Mail) -> bool {
    mail.report_type.as_deref() == Some("feedback-report")
        || mail
            .leaves
            .iter()
            .any(|l| l.depth == 0 && l.ctype == "message/feedback-report")
        || mail
            .embedded
            .iter()
            .any(|f| f.has("x-hmxmroriginalrecipient"))
        || is_unsubscribe_request(mail)
}

/// Apple Mail's "unsubscribe" button mails the list with
/// `X-Apple-Unsubscribe: true`: the reader wants no more mail, which listmonk
/// handles best as a complaint against the sender (the From address).
fn is_unsubscribe_request(mail: &Mail) -> bool {
    mail.headers
        .get("x-apple-unsubscribe")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The complaining recipients: the report's Original-Rcpt-To and
/// Removal-Recipient fields (RFC 5965 §3.2, RFC 6650), else the embedded
/// original's recipient.
pub(crate) fn recipients(mail: &Mail) -> Vec<String> {
    let mut found = address::Distinct::default();
    for leaf in mail
        .leaves
        .iter()
        .filter(|l| l.depth == 0 && l.ctype == "message/feedback-report")
    {
        let fields = parse_fields(leaf.text());
        for name in ["original-rcpt-to", "removal-recipient"] {
            for v in fields.all(name) {
                for (_, a) in address::find_all(v) {
                    found.push(a);
                }
            }
        }
    }
    let mut out = found.into_vec();
    if out.is_empty() && is_unsubscribe_request(mail) {
        out = mail
            .headers
            .get("from")
            .and_then(address::first)
            .into_iter()
            .collect();
    }
    if out.is_empty() {
        out = embedded::original_recipients(mail);
    }
    out.retain(|a| !address::is_system(a));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARF: &str = "From: abuse@isp.example\nSubject: FW: spam\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nThis is an abuse report.\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: Test/1.0\nVersion: 1\nOriginal-Rcpt-To: <Kijitora@Example.com>\n\n--b\nContent-Type: message/rfc822\n\nFrom: news@sender.example\nTo: someone-else@example.org\nSubject: hi\n\nbody\n--b--\n";

    #[test]
    fn arf_with_original_rcpt_to() {
        let m = Mail::parse(ARF.as_bytes());
        assert!(is_feedback(&m));
        assert_eq!(recipients(&m), ["kijitora@example.com"]);
    }

    #[test]
    fn arf_falls_back_to_embedded_to() {
        let raw = ARF.replace("Original-Rcpt-To: <Kijitora@Example.com>\n", "");
        let m = Mail::parse(raw.as_bytes());
        assert_eq!(recipients(&m), ["someone-else@example.org"]);
    }
}
