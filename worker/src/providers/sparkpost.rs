//! SparkPost's webhooks (no signature: Basic credentials or a token configured on the
//! webhook): arrays of `{msys: {message_event: {...}}}` with `bounce`, `out_of_band`,
//! `spam_complaint` and `policy_rejection` events.

use serde_json::Value;

use super::bounce::{complete, event};
use super::listmonk::{campaign_in, subscriber_in};
use super::payload::{content_id, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use crate::event::{BounceEvent, BounceType};

pub const NAME: &str = "sparkpost";

/// SparkPost wraps each event as `{msys: {message_event: {...}}}`.
pub fn item_of(mut item: Value) -> Option<BounceEvent> {
    event_of(item.pointer_mut("/msys/message_event").map(Value::take)?)
}

/// SparkPost's bounce classes (support.sparkpost.com "Bounce classification codes"): the
/// ones about the address itself are hard; auto-replies, subscribe requests and
/// challenge-responses are not failures at all.
fn class_type(class: Option<u32>, default: BounceType) -> Option<BounceType> {
    match class {
        Some(10 | 25 | 30 | 90) => Some(BounceType::Hard),
        Some(60 | 80 | 100) => None,
        Some(_) => Some(BounceType::Soft),
        None => Some(default),
    }
}

/// `bounce_class` ("Bounce classification codes",
/// https://support.sparkpost.com/docs/deliverability/bounce-classification-codes). The
/// server's reply in `raw_reason` is read first: SparkPost derives the class from it, and
/// the reply tells apart what a class lumps together (Generic Bounce, Mail Block). 60, 80
/// and 100 give no event.
pub const CLASSES: &[(&str, Reason)] = &[
    ("1", Reason::OnHold),
    ("10", Reason::UserUnknown),
    ("20", Reason::OnHold),
    ("21", Reason::NetworkError),
    ("22", Reason::MailboxFull),
    ("23", Reason::MesgTooBig),
    ("24", Reason::Expired),
    ("25", Reason::OnHold),
    ("26", Reason::OnHold),
    ("30", Reason::OnHold),
    ("40", Reason::OnHold),
    ("50", Reason::Blocked),
    ("51", Reason::Blocked),
    ("52", Reason::SpamDetected),
    ("53", Reason::ContentError),
    ("54", Reason::NoRelaying),
    ("70", Reason::OnHold),
    ("90", Reason::OnHold),
];

/// Classes of SparkPost's own refusals (Admin Failure: its policies or suppression list;
/// Smart Send Suppression): the text is SparkPost's, not a server's reply.
const SPARKPOST_REFUSALS: &[u32] = &[25, 26];

pub fn event_of(ev: Value) -> Option<BounceEvent> {
    let class = match ev.get("bounce_class") {
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    let t = match str_at(&ev, "/type")? {
        "bounce" | "out_of_band" => class_type(class, BounceType::Soft)?,
        "policy_rejection" => class_type(class, BounceType::Hard)?,
        "spam_complaint" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&ev, "/rcpt_to").or_else(|| str_at(&ev, "/raw_rcpt_to")))?;
    let id = str_at(&ev, "/event_id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&ev));
    let campaign = campaign_in(ev.get("rcpt_meta"));
    let subscriber = subscriber_in(ev.get("rcpt_meta"));
    let created_at = time(ev.get("timestamp"));
    let why = why(&ev, class, t);
    let e = event(NAME, email, t, ev, id);
    Some(complete(e, (campaign, subscriber), created_at, why))
}

fn why(ev: &Value, class: Option<u32>, t: BounceType) -> Why {
    if t == BounceType::Complaint {
        return Why::of(Reason::Feedback);
    }
    let category = lookup(CLASSES, class.map(|c| c.to_string()).as_deref());
    let code = match ev.get("error_code") {
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    };
    // `reason` is `raw_reason` with the recipient's address masked.
    let text = str_at(ev, "/raw_reason").or_else(|| str_at(ev, "/reason"));
    let mut why = Why::from_reply(category, None, code, text);
    let refused = str_at(ev, "/type") == Some("policy_rejection")
        || class.is_some_and(|c| SPARKPOST_REFUSALS.contains(&c));
    if refused {
        why.reason = category.unwrap_or(Reason::OnHold);
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture_events, reasons};
    use serde_json::json;

    fn bounce(kind: &str, class: &str, raw_reason: &str) -> BounceEvent {
        event_of(json!({"type": kind, "bounce_class": class, "event_id": "1",
            "rcpt_to": "a@example.com", "error_code": "550", "raw_reason": raw_reason,
            "timestamp": "1767323045", "rcpt_meta": {}}))
        .unwrap()
    }

    #[test]
    fn classes_row_by_row() {
        let rows = [
            ("1", Reason::OnHold),
            ("10", Reason::UserUnknown),
            ("20", Reason::OnHold),
            ("21", Reason::NetworkError),
            ("22", Reason::MailboxFull),
            ("23", Reason::MesgTooBig),
            ("24", Reason::Expired),
            ("25", Reason::OnHold),
            ("26", Reason::OnHold),
            ("30", Reason::OnHold),
            ("40", Reason::OnHold),
            ("50", Reason::Blocked),
            ("51", Reason::Blocked),
            ("52", Reason::SpamDetected),
            ("53", Reason::ContentError),
            ("54", Reason::NoRelaying),
            ("70", Reason::OnHold),
            ("90", Reason::OnHold),
        ];
        assert_eq!(rows.len(), CLASSES.len(), "a row is untested");
        for (class, want) in rows {
            let e = bounce("bounce", class, GENERIC_REPLY);
            assert_eq!(e.reason, Some(want), "{class}");
            assert_eq!(e.meta["reason"], want.as_str(), "{class}");
        }
    }

    #[test]
    fn the_reply_decides_unless_sparkpost_refused_to_send() {
        let e = bounce(
            "bounce",
            "40",
            "554 5.7.1 rejected due to example.org's DMARC policy",
        );
        assert_eq!(e.reason, Some(Reason::AuthFailure));
        let e = bounce(
            "policy_rejection",
            "25",
            "550 5.7.1 [internal] recipient blackholed",
        );
        assert_eq!(e.reason, Some(Reason::OnHold));
        assert_eq!(e.meta["status"], "5.7.1");
    }

    #[test]
    fn full_events_carry_reason_status_and_diagnostic() {
        let e = fixture_events("sparkpost-events.json", item_of);
        assert_eq!(
            reasons(&e),
            [Reason::UserUnknown, Reason::MailboxFull, Reason::Feedback]
        );
        // SparkPost's own `reason` stays; the name goes beside it.
        assert_eq!(e[0].meta["reason"], "userunknown");
        assert!(e[0].meta.get("provider_reason").is_none());
        assert_eq!(e[0].meta["status"], "5.1.1");
        assert_eq!(e[0].meta["diagnostic"], "550 5.1.1 user unknown");
        assert_eq!(e[1].meta["reason"], "mailboxfull");
        assert_eq!(e[1].meta["status"], "4.2.2");
        assert_eq!(e[2].meta["reason"], "feedback");
    }
}
