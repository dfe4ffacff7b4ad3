//! SendGrid's Event Webhook: ECDSA P-256 over SHA-256(timestamp ‖ body), a timestamp
//! tolerance, and batches of `bounce` / `dropped` / `spamreport` events among others.

use base64::Engine;
use bounceops_api::SendgridProvider;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::bounce::{complete, event};
use super::listmonk::campaign_in;
use super::payload::{content_id, json, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use super::secret::{SecretValueError, from_secret};
use super::tolerance::check_timestamp;
use super::webhook::{Authenticate, Webhook};
use super::{Admitted, Head, Incoming, Loaded, Received, Rejection};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "sendgrid";
const SIGNATURE: &str = "x-twilio-email-event-webhook-signature";
const TIMESTAMP: &str = "x-twilio-email-event-webhook-timestamp";

/// Classifications SendGrid gives to failures that say nothing about the address itself.
const SOFT_CLASSIFICATIONS: &[&str] = &[
    "Technical Failure",
    "Content",
    "Reputation",
    "Frequency or Volume Too High",
];

/// `bounce_classification` of `bounce` events ("Bounce and block classifications",
/// https://www.twilio.com/docs/sendgrid/ui/analytics-and-reporting/bounce-and-block-classifications).
/// SendGrid derives it from the same reply it passes in `reason`, which is read first: the
/// classification lumps together what the reply tells apart (a block list and a low
/// reputation are both "Reputation").
pub const CLASSIFICATIONS: &[(&str, Reason)] = &[
    ("Invalid Address", Reason::UserUnknown),
    // "Mailbox full, disabled or inactive": a full mailbox says so in the reply.
    ("Mailbox Unavailable", Reason::Suspend),
    ("Technical Failure", Reason::SystemError),
    ("Content", Reason::SpamDetected),
    ("Reputation", Reason::BadReputation),
    ("Frequency or Volume Too High", Reason::TooManyConn),
    ("Unclassified", Reason::OnHold),
];

/// `reason` of `dropped` events: SendGrid's own refusal to send, for an address on one of
/// its suppression lists (Event Webhook reference, "dropped",
/// https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event). No server
/// replied, so this table alone decides; other values are `onhold`.
pub const DROPPED: &[(&str, Reason)] = &[
    // The bounce list holds any earlier bounce, whatever its cause.
    ("Bounced Address", Reason::OnHold),
    ("Spam Reporting Address", Reason::Feedback),
    ("Unsubscribed Address", Reason::OnHold),
    ("Invalid", Reason::UserUnknown),
];

/// The webhook's verification key, and the tolerance of the signed timestamp.
pub struct EcdsaSigned {
    key: VerifyingKey,
    tolerance_seconds: u32,
}

pub fn load(spec: &SendgridProvider, secrets: &SecretsDir) -> Loaded<Webhook<EcdsaSigned>> {
    let r = spec.public_key_secret_ref.as_ref();
    from_secret(
        spec.enabled,
        secrets,
        "sendgrid.publicKeySecretRef",
        r,
        |text| {
            let auth = EcdsaSigned {
                key: parse_public_key(&text)?,
                tolerance_seconds: spec.tolerance_seconds.max(1),
            };
            Ok(Webhook::new(NAME, auth, |req: &Incoming| {
                Ok(Received::Events(events(json(&req.body)?)?))
            }))
        },
    )
}

/// The key as SendGrid shows it: base64 of a DER SubjectPublicKeyInfo (PEM armour, if a
/// user pasted it, is tolerated).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SecretValueError> {
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .split_whitespace()
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| SecretValueError::PublicKeyNotBase64)?;
    VerifyingKey::from_public_key_der(&der).map_err(|_| SecretValueError::PublicKeyNotP256)
}

impl EcdsaSigned {
    /// The signature and the timestamp of the head, the timestamp within the tolerance:
    /// a replay is refused before its body is read.
    fn signed_head<'a>(&self, head: &Head<'a>) -> Result<(Signature, &'a str), Rejection> {
        let signature = head.header(SIGNATURE).ok_or(Rejection::Unauthorized(
            "missing X-Twilio-Email-Event-Webhook-Signature header",
        ))?;
        let timestamp = head.header(TIMESTAMP).ok_or(Rejection::Unauthorized(
            "missing X-Twilio-Email-Event-Webhook-Timestamp header",
        ))?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| Rejection::Unauthorized("signature is not base64"))?;
        let signature = Signature::from_der(&der)
            .map_err(|_| Rejection::Unauthorized("signature is not a DER ECDSA signature"))?;
        check_timestamp(timestamp, head.now, self.tolerance_seconds)?;
        Ok((signature, timestamp))
    }
}

impl Authenticate for EcdsaSigned {
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        self.signed_head(head)?;
        Ok(Admitted::BodyToVerify)
    }

    fn verify(&self, req: &Incoming) -> Result<(), Rejection> {
        let (signature, timestamp) = self.signed_head(&req.head())?;
        // The digest of timestamp ‖ body, hashed in place: the body is not copied to be
        // verified (ECDSA over SHA-256 verifies that digest).
        let digest = Sha256::new()
            .chain_update(timestamp.as_bytes())
            .chain_update(&req.body)
            .finalize();
        self.key
            .verify_prehash(&digest, &signature)
            .map_err(|_| Rejection::Unauthorized("signature does not verify"))
    }
}

/// A batch into events; event kinds that are not failures are skipped.
pub fn events(body: Value) -> Result<Vec<BounceEvent>, Rejection> {
    let Value::Array(items) = body else {
        return Err(Rejection::Malformed(
            "invalid payload: SendGrid sends an array of events".into(),
        ));
    };
    let mut out = Vec::new();
    for item in items {
        let kind = item.get("event").and_then(Value::as_str).unwrap_or("");
        let t = match kind {
            "bounce" | "dropped" => {
                let class = item
                    .get("bounce_classification")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if SOFT_CLASSIFICATIONS.contains(&class) {
                    BounceType::Soft
                } else {
                    BounceType::Hard
                }
            }
            "spamreport" => BounceType::Complaint,
            _ => continue,
        };
        let Some(email) = recipient(item.get("email").and_then(Value::as_str)) else {
            continue;
        };
        let id = match item.get("sg_event_id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => content_id(&item),
        };
        // Custom args arrive as top-level keys of the event.
        let campaign = campaign_in(Some(&item));
        let created_at = time(item.get("timestamp"));
        let why = why(&item);
        let e = event(NAME, email, t, item, id);
        out.push(complete(e, (campaign, None), created_at, why));
    }
    Ok(out)
}

/// Why a failure or complaint event happened.
pub fn why(item: &Value) -> Why {
    match str_at(item, "/event") {
        Some("spamreport") => Why::of(Reason::Feedback),
        Some("dropped") => {
            Why::of(lookup(DROPPED, str_at(item, "/reason")).unwrap_or(Reason::OnHold))
        }
        _ => Why::from_reply(
            lookup(CLASSIFICATIONS, str_at(item, "/bounce_classification")),
            str_at(item, "/status"),
            None,
            str_at(item, "/reason"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture, reasons};
    use serde_json::json;

    #[test]
    fn mapping() {
        let batch = json!([
            {"event": "bounce", "type": "bounce", "email": "a@x.test", "sg_event_id": "1"},
            {"event": "bounce", "type": "blocked", "email": "b@x.test", "sg_event_id": "2",
             "bounce_classification": "Reputation"},
            {"event": "dropped", "email": "c@x.test", "sg_event_id": "3"},
            {"event": "spamreport", "email": "d@x.test", "sg_event_id": "4",
             "X-Listmonk-Campaign": "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"},
            {"event": "delivered", "email": "e@x.test", "sg_event_id": "5"}
        ]);
        let e = events(batch).unwrap();
        let kinds: Vec<_> = e.iter().map(|e| e.bounce_type).collect();
        assert_eq!(
            kinds,
            [
                BounceType::Hard,
                BounceType::Soft,
                BounceType::Hard,
                BounceType::Complaint
            ]
        );
        assert!(e[3].campaign_uuid.is_some());
        assert!(events(json!({"event": "bounce"})).is_err());
    }

    fn reason_of(item: Value) -> Reason {
        let e = events(json!([item])).unwrap().remove(0);
        assert_eq!(e.meta["reason"], e.reason.unwrap().as_str());
        e.reason.unwrap()
    }

    #[test]
    fn classifications_row_by_row() {
        let rows = [
            ("Invalid Address", Reason::UserUnknown),
            ("Mailbox Unavailable", Reason::Suspend),
            ("Technical Failure", Reason::SystemError),
            ("Content", Reason::SpamDetected),
            ("Reputation", Reason::BadReputation),
            ("Frequency or Volume Too High", Reason::TooManyConn),
            ("Unclassified", Reason::OnHold),
        ];
        assert_eq!(rows.len(), CLASSIFICATIONS.len(), "a row is untested");
        for (class, want) in rows {
            let item = json!({"event": "bounce", "type": "bounce", "email": "a@example.com",
                "sg_event_id": "1", "timestamp": 1767323045, "status": "5.0.0",
                "reason": GENERIC_REPLY, "bounce_classification": class});
            assert_eq!(reason_of(item), want, "{class}");
        }
    }

    #[test]
    fn dropped_row_by_row() {
        let rows = [
            ("Bounced Address", Reason::OnHold),
            ("Spam Reporting Address", Reason::Feedback),
            ("Unsubscribed Address", Reason::OnHold),
            ("Invalid", Reason::UserUnknown),
        ];
        assert_eq!(rows.len(), DROPPED.len(), "a row is untested");
        for (reason, want) in rows {
            let item = json!({"event": "dropped", "email": "a@example.com", "sg_event_id": "1",
                "timestamp": 1767323045, "status": "5.0.0", "reason": reason});
            assert_eq!(reason_of(item), want, "{reason}");
        }
        // No server replied: a status SendGrid puts on its refusal says nothing.
        let item = json!({"event": "dropped", "email": "a@example.com", "sg_event_id": "1",
            "status": "5.1.1", "reason": "Recipient List over Package Quota"});
        assert_eq!(reason_of(item), Reason::OnHold);
    }

    #[test]
    fn a_full_batch_carries_reason_status_and_diagnostic() {
        let vars = [
            ("EMAIL1", "a@example.net"),
            ("EMAIL2", "b@example.net"),
            ("EMAIL3", "c@example.net"),
            ("EMAIL4", "d@example.net"),
            ("ID", "ev"),
            ("CAMPAIGN", "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"),
        ];
        let e = events(fixture("sendgrid-batch.json", &vars)).unwrap();
        assert_eq!(
            reasons(&e),
            [
                Reason::UserUnknown,
                // "421 try again later" names nothing: the classification decides.
                Reason::BadReputation,
                Reason::Feedback,
                Reason::OnHold
            ]
        );
        // SendGrid's own `reason` and `status` stay as sent; the name goes beside them.
        assert_eq!(e[0].meta["reason"], "userunknown");
        assert!(e[0].meta.get("provider_reason").is_none());
        assert_eq!(e[0].meta["status"], "5.1.1");
        assert_eq!(e[0].meta["diagnostic"], "550 5.1.1 user unknown");
        assert_eq!(e[1].meta["diagnostic"], "421 try again later");
        assert_eq!(e[2].meta["reason"], "feedback");
        assert_eq!(e[3].meta["reason"], "onhold");
        assert_eq!(e[3].meta["provider_reason"], "Bounced Address");
    }
}
