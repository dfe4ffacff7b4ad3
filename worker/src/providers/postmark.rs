//! Postmark's bounce and spam-complaint webhooks: HTTP Basic credentials in the webhook
//! URL, one record per request.

use bounceops_api::PostmarkProvider;
use serde_json::Value;

use super::bounce::{complete, event};
use super::listmonk::campaign_in;
use super::payload::{content_id, json, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use super::secret::from_secret;
use super::webhook::Webhook;
use super::{Incoming, Loaded, Received, Rejection};
use crate::auth::Credentials;
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "postmark";

/// `Type` of the bounce records that give an event (Bounce API, "Bounce types",
/// https://postmarkapp.com/developer/api/bounce-api#bounce-types). HardBounce, SoftBounce
/// and Transient are Postmark's catch-alls: `onhold` here, so the remote server's reply
/// in `Details` decides. The reply is read first for every type, since it can name what a
/// type only suggests.
pub const TYPES: &[(&str, Reason)] = &[
    ("HardBounce", Reason::OnHold),
    ("SoftBounce", Reason::OnHold),
    ("Transient", Reason::OnHold),
    ("DnsError", Reason::NetworkError),
    ("SpamNotification", Reason::SpamDetected),
    ("VirusNotification", Reason::VirusDetected),
    ("DMARCPolicy", Reason::AuthFailure),
    // Postmark did not send: the address is not one.
    ("BadEmailAddress", Reason::UserUnknown),
    // Deactivated by a user of the Postmark account, for a reason Postmark does not keep.
    ("ManuallyDeactivated", Reason::OnHold),
    ("SpamComplaint", Reason::Feedback),
];

pub fn load(spec: &PostmarkProvider, secrets: &SecretsDir) -> Loaded<Webhook<Credentials>> {
    let r = spec.credentials_secret_ref.as_ref();
    from_secret(
        spec.enabled,
        secrets,
        "postmark.credentialsSecretRef",
        r,
        |text| Ok(Webhook::new(NAME, Credentials::parse(&text)?, parse)),
    )
}

fn parse(req: &Incoming) -> Result<Received, Rejection> {
    let record = json(&req.body)?;
    if !record.is_object() {
        return Err(Rejection::Malformed(
            "invalid payload: Postmark sends one record object".into(),
        ));
    }
    Ok(Received::Events(events(record).into_iter().collect()))
}

/// A record into an event; deliveries, opens, clicks, subscription changes and bounce
/// types that say nothing about the address (auto-responders, ...) give none.
pub fn events(record: Value) -> Option<BounceEvent> {
    let record_type = record.get("RecordType").and_then(Value::as_str)?;
    let kind = record.get("Type").and_then(Value::as_str).unwrap_or("");
    let t = match (record_type, kind) {
        ("SpamComplaint", _) | ("Bounce", "SpamComplaint") => BounceType::Complaint,
        ("Bounce", "HardBounce" | "BadEmailAddress" | "ManuallyDeactivated") => BounceType::Hard,
        (
            "Bounce",
            "SoftBounce" | "Transient" | "DnsError" | "SpamNotification" | "VirusNotification"
            | "DMARCPolicy",
        ) => BounceType::Soft,
        _ => return None,
    };
    let email = recipient(record.get("Email").and_then(Value::as_str))?;
    let id = match record.get("ID") {
        Some(Value::Number(n)) => format!("{record_type}:{n}"),
        Some(Value::String(s)) => format!("{record_type}:{s}"),
        _ => content_id(&record),
    };
    let campaign = campaign_in(record.get("Metadata"));
    let created_at = time(record.get("BouncedAt"));
    let why = if t == BounceType::Complaint {
        Why::of(Reason::Feedback)
    } else {
        Why::from_reply(
            lookup(TYPES, Some(kind)),
            None,
            None,
            str_at(&record, "/Details"),
        )
    };
    let e = event(NAME, email, t, record, id);
    Some(complete(e, (campaign, None), created_at, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture};
    use serde_json::json;

    #[test]
    fn types_row_by_row() {
        let rows = [
            ("HardBounce", Reason::OnHold),
            ("SoftBounce", Reason::OnHold),
            ("Transient", Reason::OnHold),
            ("DnsError", Reason::NetworkError),
            ("SpamNotification", Reason::SpamDetected),
            ("VirusNotification", Reason::VirusDetected),
            ("DMARCPolicy", Reason::AuthFailure),
            ("BadEmailAddress", Reason::UserUnknown),
            ("ManuallyDeactivated", Reason::OnHold),
            ("SpamComplaint", Reason::Feedback),
        ];
        assert_eq!(rows.len(), TYPES.len(), "a row is untested");
        for (kind, want) in rows {
            let record = json!({"RecordType": "Bounce", "ID": 42, "Type": kind,
                "Email": "a@example.com", "BouncedAt": "2026-01-02T03:04:05Z",
                "Details": format!("smtp;{GENERIC_REPLY}")});
            let e = events(record).unwrap();
            assert_eq!(e.reason, Some(want), "{kind}");
            assert_eq!(e.meta["reason"], want.as_str(), "{kind}");
        }
    }

    #[test]
    fn details_outrank_a_catch_all_type() {
        let record = json!({"RecordType": "Bounce", "ID": 1, "Type": "HardBounce",
            "Email": "a@example.com",
            "Details": "smtp;554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org"});
        let e = events(record).unwrap();
        assert_eq!(e.reason, Some(Reason::Blocked));
        assert_eq!(e.meta["status"], "5.7.1");
    }

    #[test]
    fn full_records_carry_reason_status_and_diagnostic() {
        let vars = [
            ("ID", "4323372036854775807"),
            ("EMAIL1", "a@example.net"),
            ("CAMPAIGN", "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"),
        ];
        let e = events(fixture("postmark-bounce.json", &vars)).unwrap();
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(e.meta["reason"], "userunknown");
        assert_eq!(e.meta["status"], "5.1.1");
        assert_eq!(
            e.meta["diagnostic"],
            "smtp;550 5.1.1 The email account that you tried to reach does not exist."
        );
        assert_eq!(e.meta["Type"], "HardBounce");
        let e = events(fixture("postmark-complaint.json", &vars)).unwrap();
        assert_eq!(e.reason, Some(Reason::Feedback));
        assert_eq!(e.meta["reason"], "feedback");
        assert!(e.meta.get("diagnostic").is_none());
    }
}
