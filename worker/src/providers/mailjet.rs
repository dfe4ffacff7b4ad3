//! Mailjet's event webhooks (no signature: Basic credentials or a token in the webhook
//! URL), one event or a grouped array: `bounce` (`hard_bounce`), `blocked`, `spam`.

use serde_json::Value;

use super::bounce::{complete, event};
use super::listmonk::campaign_in_text;
use super::payload::{content_id, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use crate::event::{BounceEvent, BounceType};

pub const NAME: &str = "mailjet";

/// `error` of `bounce` and `blocked` events (Event tracking, "Possible values for errors",
/// https://dev.mailjet.com/email/guides/webhooks/). Mailjet passes on no server reply,
/// only these words, so they decide; `error_related_to` ([`RELATED`]) when the error is
/// not one of them.
pub const ERRORS: &[(&str, Reason)] = &[
    ("user unknown", Reason::UserUnknown),
    ("mailbox inactive", Reason::Suspend),
    ("quota exceeded", Reason::MailboxFull),
    // The sender's own blocklist in Mailjet, for a reason it does not say.
    ("blacklisted", Reason::OnHold),
    ("spam reporter", Reason::Feedback),
    ("invalid domain", Reason::HostUnknown),
    ("no mail host", Reason::NotAccept),
    // "The recipient's server refused to talk to us".
    ("relay/access denied", Reason::Blocked),
    ("sender blocked", Reason::Blocked),
    ("content blocked", Reason::SpamDetected),
    ("policy issue", Reason::PolicyViolation),
    ("system issue", Reason::SystemError),
    ("protocol issue", Reason::SyntaxError),
    ("connection issue", Reason::NetworkError),
    ("timeout", Reason::Expired),
    ("typofix", Reason::HostUnknown),
    ("bad or empty template", Reason::ContentError),
    ("error in template language", Reason::ContentError),
    // Mailjet's own refusals: an address it knows to be bad, or sent twice.
    ("preblocked", Reason::OnHold),
    ("duplicate in campaign", Reason::OnHold),
];

/// `error_related_to`, for an `error` that [`ERRORS`] does not know.
pub const RELATED: &[(&str, Reason)] = &[
    ("recipient", Reason::OnHold),
    ("domain", Reason::HostUnknown),
    ("content", Reason::ContentError),
    ("spam", Reason::SpamDetected),
    ("system", Reason::SystemError),
    ("mailjet", Reason::OnHold),
];

pub fn event_of(item: Value) -> Option<BounceEvent> {
    let kind = str_at(&item, "/event")?;
    let t = match kind {
        "bounce" => {
            if item.get("hard_bounce").and_then(Value::as_bool) == Some(true) {
                BounceType::Hard
            } else {
                BounceType::Soft
            }
        }
        // Mailjet refused to send: the address is known bad (or was complained about).
        "blocked" => BounceType::Hard,
        "spam" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&item, "/email"))?;
    let id = match item.get("MessageID").or_else(|| item.get("Message_GUID")) {
        Some(Value::Number(n)) => format!("{n}:{kind}:{email}"),
        Some(Value::String(s)) => format!("{s}:{kind}:{email}"),
        _ => content_id(&item),
    };
    // Payload is the X-MJ-EventPayload header, CustomID the X-MJ-CustomID one.
    let campaign = campaign_in_text(str_at(&item, "/Payload"))
        .or_else(|| campaign_in_text(str_at(&item, "/CustomID")));
    let created_at = time(item.get("time"));
    let why = Why::of(if t == BounceType::Complaint {
        Reason::Feedback
    } else {
        lookup(ERRORS, str_at(&item, "/error"))
            .or_else(|| lookup(RELATED, str_at(&item, "/error_related_to")))
            .unwrap_or(Reason::OnHold)
    });
    let e = event(NAME, email, t, item, id);
    Some(complete(e, (campaign, None), created_at, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{fixture_events, reasons};
    use serde_json::json;

    fn bounce(related: &str, error: &str) -> Reason {
        let item = json!({"event": "bounce", "time": 1767323045, "MessageID": 19421777835146490u64,
            "email": "a@example.com", "mj_campaign_id": 7257, "CustomID": "", "Payload": "",
            "blocked": false, "hard_bounce": true, "error_related_to": related, "error": error});
        let e = event_of(item).unwrap();
        assert_eq!(e.meta["reason"], e.reason.unwrap().as_str());
        e.reason.unwrap()
    }

    #[test]
    fn errors_row_by_row() {
        let rows = [
            ("recipient", "user unknown", Reason::UserUnknown),
            ("recipient", "mailbox inactive", Reason::Suspend),
            ("recipient", "quota exceeded", Reason::MailboxFull),
            ("recipient", "blacklisted", Reason::OnHold),
            ("recipient", "spam reporter", Reason::Feedback),
            ("domain", "invalid domain", Reason::HostUnknown),
            ("domain", "no mail host", Reason::NotAccept),
            ("domain", "relay/access denied", Reason::Blocked),
            ("spam", "sender blocked", Reason::Blocked),
            ("spam", "content blocked", Reason::SpamDetected),
            ("spam", "policy issue", Reason::PolicyViolation),
            ("system", "system issue", Reason::SystemError),
            ("system", "protocol issue", Reason::SyntaxError),
            ("system", "connection issue", Reason::NetworkError),
            ("system", "timeout", Reason::Expired),
            ("domain", "typofix", Reason::HostUnknown),
            ("content", "bad or empty template", Reason::ContentError),
            (
                "content",
                "error in template language",
                Reason::ContentError,
            ),
            ("mailjet", "preblocked", Reason::OnHold),
            ("mailjet", "duplicate in campaign", Reason::OnHold),
        ];
        assert_eq!(rows.len(), ERRORS.len(), "a row is untested");
        for (related, error, want) in rows {
            assert_eq!(bounce(related, error), want, "{error}");
        }
    }

    #[test]
    fn related_row_by_row() {
        let rows = [
            ("recipient", Reason::OnHold),
            ("domain", Reason::HostUnknown),
            ("content", Reason::ContentError),
            ("spam", Reason::SpamDetected),
            ("system", Reason::SystemError),
            ("mailjet", Reason::OnHold),
        ];
        assert_eq!(rows.len(), RELATED.len(), "a row is untested");
        for (related, want) in rows {
            assert_eq!(
                bounce(related, "an error Mailjet added later"),
                want,
                "{related}"
            );
        }
    }

    #[test]
    fn full_events_carry_their_reason() {
        let e = fixture_events("mailjet-events.json", event_of);
        assert_eq!(
            reasons(&e),
            [Reason::UserUnknown, Reason::MailboxFull, Reason::Feedback]
        );
        assert_eq!(e[1].meta["reason"], "mailboxfull");
        assert_eq!(e[1].meta["error"], "quota exceeded");
        // Mailjet passes on no server reply.
        assert!(e[1].meta.get("diagnostic").is_none());
    }
}
