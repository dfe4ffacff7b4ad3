//! Azure Communication Services e-mail delivery reports, delivered by Event Grid: the
//! subscription-validation handshake, a shared secret (the `code` query parameter or a
//! header), and `Microsoft.Communication.EmailDeliveryReportReceived` events.

use bounceops_api::AzureProvider;
use serde_json::Value;

use super::bounce::event;
use super::hmac::ct_eq;
use super::payload::{content_id, json, one_or_many, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use super::secret::from_secret;
use super::webhook::{Authenticate, Webhook};
use super::{Admitted, Head, Incoming, Loaded, Received, Rejection};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "azure";
const DELIVERY_REPORT: &str = "Microsoft.Communication.EmailDeliveryReportReceived";
const VALIDATION: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// `data.status` of a delivery report (Event Grid, "Azure Communication Services - Email
/// events",
/// https://learn.microsoft.com/azure/event-grid/communication-services-email-events).
/// Bounced and Failed say nothing more: the server's reply in
/// `deliveryStatusDetails.statusMessage` decides.
pub const STATUSES: &[(&str, Reason)] = &[
    ("Bounced", Reason::OnHold),
    ("Failed", Reason::OnHold),
    // The resource's suppression list: Azure's own refusal, for a reason it does not say.
    ("Suppressed", Reason::OnHold),
    ("FilteredSpam", Reason::SpamDetected),
    ("Quarantined", Reason::SpamDetected),
];

/// The shared secret, given as the `code` query parameter or in a header of the user's
/// choice.
pub struct SharedSecret {
    secret: String,
    header: String,
}

pub fn load(spec: &AzureProvider, secrets: &SecretsDir) -> Loaded<Webhook<SharedSecret>> {
    let r = spec.shared_secret_ref.as_ref();
    from_secret(
        spec.enabled,
        secrets,
        "azure.sharedSecretRef",
        r,
        |secret| {
            let header = spec.secret_header.clone();
            Ok(Webhook::new(NAME, SharedSecret { secret, header }, parse))
        },
    )
}

impl Authenticate for SharedSecret {
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        let given = head
            .query_param("code")
            .or_else(|| head.header(&self.header).map(|s| s.trim().to_owned()))
            .ok_or(Rejection::Unauthorized(
                "missing shared secret (code parameter or header)",
            ))?;
        if ct_eq(self.secret.as_bytes(), given.as_bytes()) {
            Ok(Admitted::Authenticated)
        } else {
            Err(Rejection::Unauthorized("shared secret does not match"))
        }
    }
}

/// Delivery reports into events, or the answer to Event Grid's validation handshake.
fn parse(req: &Incoming) -> Result<Received, Rejection> {
    let events = one_or_many(json(&req.body)?)?;
    if req.header("aeg-event-type") == Some("SubscriptionValidation")
        || events
            .iter()
            .any(|e| str_at(e, "/eventType") == Some(VALIDATION))
    {
        let code = events
            .iter()
            .find_map(|e| str_at(e, "/data/validationCode"))
            .ok_or_else(|| Rejection::Malformed("missing data.validationCode".into()))?;
        return Ok(Received::Reply(
            serde_json::json!({ "validationResponse": code }),
        ));
    }
    Ok(Received::Events(
        events.into_iter().filter_map(event_of).collect(),
    ))
}

/// One Event Grid event into a bounce; delivered, expanded and other statuses give none.
pub fn event_of(ev: Value) -> Option<BounceEvent> {
    if str_at(&ev, "/eventType") != Some(DELIVERY_REPORT) {
        return None;
    }
    let status = str_at(&ev, "/data/status")
        .unwrap_or("")
        .to_ascii_lowercase();
    let details = str_at(&ev, "/data/deliveryStatusDetails/statusMessage").unwrap_or("");
    let t = match status.as_str() {
        "bounced" | "suppressed" => BounceType::Hard,
        "failed" => match enhanced_status_class(details) {
            Some('5') => BounceType::Hard,
            _ => BounceType::Soft,
        },
        "filteredspam" | "quarantined" => BounceType::Soft,
        _ => return None,
    };
    let email = recipient(str_at(&ev, "/data/recipient"))?;
    let id = str_at(&ev, "/id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&ev));
    let created_at = time(ev.pointer("/data/deliveryAttemptTimeStamp"))
        .or_else(|| time(ev.pointer("/data/deliveryAttemptTimestamp")))
        .or_else(|| time(ev.get("eventTime")));
    let category = lookup(STATUSES, Some(&status));
    let mut why = Why::from_reply(category, None, None, Some(details));
    // On its own suppression list Azure never tried: the message is Azure's, not a reply.
    if status == "suppressed" {
        why.reason = category.unwrap_or(Reason::OnHold);
    }
    let mut e = event(NAME, email, t, ev, id);
    e.created_at = created_at;
    why.apply(&mut e);
    Some(e)
}

/// The class digit of the first RFC 3463 status (`5.1.1`) in a free-text message.
fn enhanced_status_class(text: &str) -> Option<char> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(4)).find_map(|i| {
        let w = &b[i..i + 5];
        let boundary_before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        (boundary_before
            && matches!(w[0], b'2' | b'4' | b'5')
            && w[1] == b'.'
            && w[2].is_ascii_digit()
            && w[3] == b'.'
            && w[4].is_ascii_digit())
        .then_some(w[0] as char)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture_events};
    use serde_json::json;

    fn report(status: &str, message: &str) -> Option<BounceEvent> {
        event_of(json!({"id": "1", "eventType": DELIVERY_REPORT,
            "eventTime": "2026-01-02T03:04:06Z",
            "data": {"sender": "news@example.com", "recipient": "a@example.com",
                "messageId": "m", "status": status,
                "deliveryStatusDetails": {"statusMessage": message},
                "deliveryAttemptTimeStamp": "2026-01-02T03:04:05.000Z"}}))
    }

    #[test]
    fn statuses_row_by_row() {
        let rows = [
            ("Bounced", Reason::OnHold),
            ("Failed", Reason::OnHold),
            ("Suppressed", Reason::OnHold),
            ("FilteredSpam", Reason::SpamDetected),
            ("Quarantined", Reason::SpamDetected),
        ];
        assert_eq!(rows.len(), STATUSES.len(), "a row is untested");
        for (status, want) in rows {
            let e = report(status, GENERIC_REPLY).unwrap();
            assert_eq!(e.reason, Some(want), "{status}");
            assert_eq!(e.meta["reason"], want.as_str(), "{status}");
        }
        // On its suppression list Azure never tried: a status in its message does not decide.
        let e = report("Suppressed", "550 5.1.1 recipient suppressed").unwrap();
        assert_eq!(e.reason, Some(Reason::OnHold));
    }

    #[test]
    fn full_reports_carry_reason_status_and_diagnostic() {
        let e = fixture_events("azure-delivery-reports.json", event_of);
        assert_eq!(e.len(), 2, "Delivered gives no event");
        assert_eq!(e[0].reason, Some(Reason::UserUnknown));
        assert_eq!(e[0].meta["reason"], "userunknown");
        assert_eq!(e[0].meta["status"], "5.1.1");
        assert_eq!(e[0].meta["diagnostic"], "550 5.1.1 mailbox unavailable");
        assert_eq!(e[1].reason, Some(Reason::MailboxFull));
        assert_eq!(e[1].meta["status"], "4.2.2");
        assert_eq!(e[1].meta["data"]["status"], "Failed");
    }

    #[test]
    fn status_class_in_text() {
        assert_eq!(enhanced_status_class("550 5.1.1 user unknown"), Some('5'));
        assert_eq!(enhanced_status_class("451 4.2.2 mailbox full"), Some('4'));
        assert_eq!(enhanced_status_class("v15.1.1"), None);
        assert_eq!(enhanced_status_class("timeout"), None);
    }
}
