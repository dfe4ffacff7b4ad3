//! Brevo's transactional webhooks (no signature: Basic credentials or a token in the
//! webhook URL): `hard_bounce`, `soft_bounce`, `blocked`, `invalid_email`, `spam`.

use serde_json::Value;

use super::bounce::{complete, event};
use super::listmonk::{campaign_in, campaign_in_text};
use super::payload::{content_id, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use crate::event::{BounceEvent, BounceType};

pub const NAME: &str = "brevo";

/// `event` (Transactional webhooks, https://developers.brevo.com/docs/transactional-webhooks).
/// For the two bounces, Brevo passes the server's reply in `reason`, which decides; the
/// others are Brevo's own refusals to send, so the event alone decides.
pub const EVENTS: &[(&str, Reason)] = &[
    ("hard_bounce", Reason::OnHold),
    ("soft_bounce", Reason::OnHold),
    // The contact is on Brevo's blocklist: an earlier bounce, unsubscription or complaint.
    ("blocked", Reason::OnHold),
    ("invalid_email", Reason::UserUnknown),
    ("spam", Reason::Feedback),
    ("complaint", Reason::Feedback),
];

pub fn event_of(item: Value) -> Option<BounceEvent> {
    let kind = str_at(&item, "/event")?;
    let t = match kind {
        "hard_bounce" | "blocked" | "invalid_email" => BounceType::Hard,
        "soft_bounce" => BounceType::Soft,
        "spam" | "complaint" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&item, "/email"))?;
    // Brevo's `id` names the webhook, not the event: message id, event and recipient do.
    let id = match str_at(&item, "/message-id") {
        Some(m) => format!("{m}:{kind}:{email}"),
        None => content_id(&item),
    };
    let campaign = campaign_in_text(str_at(&item, "/X-Mailin-custom"))
        .or_else(|| campaign_in(item.get("headers")));
    let created_at = time(item.get("ts_event")).or_else(|| time(item.get("date")));
    let category = lookup(EVENTS, Some(kind));
    let why = match kind {
        "hard_bounce" | "soft_bounce" => {
            Why::from_reply(category, None, None, str_at(&item, "/reason"))
        }
        _ => Why::of(category.unwrap_or(Reason::OnHold)),
    };
    let e = event(NAME, email, t, item, id);
    Some(complete(e, (campaign, None), created_at, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture_events, reasons};
    use serde_json::json;

    #[test]
    fn events_row_by_row() {
        let rows = [
            ("hard_bounce", Reason::OnHold),
            ("soft_bounce", Reason::OnHold),
            ("blocked", Reason::OnHold),
            ("invalid_email", Reason::UserUnknown),
            ("spam", Reason::Feedback),
            ("complaint", Reason::Feedback),
        ];
        assert_eq!(rows.len(), EVENTS.len(), "a row is untested");
        for (kind, want) in rows {
            let item = json!({"event": kind, "email": "a@example.com", "id": 26224,
                "date": "2026-01-02 04:04:05", "message-id": "<1@smtp-relay.mailin.fr>",
                "ts_event": 1767323045, "subject": "Newsletter", "reason": GENERIC_REPLY});
            let e = event_of(item).unwrap();
            assert_eq!(e.reason, Some(want), "{kind}");
            assert_eq!(e.meta["reason"], want.as_str(), "{kind}");
        }
        // Brevo's blocklist is its refusal: a reply it quotes does not decide.
        let item = json!({"event": "blocked", "email": "a@example.com",
            "reason": "550 5.1.1 user unknown"});
        assert_eq!(event_of(item).unwrap().reason, Some(Reason::OnHold));
    }

    #[test]
    fn full_events_carry_reason_status_and_diagnostic() {
        let e = fixture_events("brevo-events.json", event_of);
        assert_eq!(
            reasons(&e),
            [Reason::UserUnknown, Reason::MailboxFull, Reason::Feedback]
        );
        // Brevo's `reason` is the reply: it is the diagnostic, not repeated.
        assert_eq!(e[1].meta["reason"], "mailboxfull");
        assert!(e[1].meta.get("provider_reason").is_none());
        assert_eq!(e[1].meta["status"], "4.2.2");
        assert_eq!(e[1].meta["diagnostic"], "452 4.2.2 mailbox full");
        assert_eq!(e[2].meta["reason"], "feedback");
    }
}
