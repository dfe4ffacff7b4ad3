//! Resend's webhooks, signed by Svix: `svix-id`, `svix-timestamp` and `svix-signature`
//! (space-separated `v1,<base64>` entries), HMAC-SHA256 of `id.timestamp.body` keyed by
//! the base64-decoded secret after `whsec_`, accepted within 5 minutes.

use base64::Engine;
use bounceops_api::ResendProvider;
use serde_json::Value;

use super::bounce::{complete, event};
use super::hmac::{Encoding, HmacScheme, HmacSigned, Signatures};
use super::listmonk::{campaign_in, subscriber_in};
use super::payload::{json_object, recipient, str_at, time};
use super::reason::{Reason, Why};
use super::secret::{SecretValueError, from_secret};
use super::webhook::Webhook;
use super::{Incoming, Loaded, Received, Rejection};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "resend";

/// Svix's headers; the HMAC of `<id>.<timestamp>.<body>`.
const SIGNATURE: HmacScheme = HmacScheme::new(
    "svix-signature",
    "missing svix-signature header",
    Signatures::Versioned,
    Encoding::Base64,
)
.id("svix-id", "missing svix-id header")
.timestamp("svix-timestamp", "missing svix-timestamp header")
.tolerance(300);

pub fn load(spec: &ResendProvider, secrets: &SecretsDir) -> Loaded<Webhook<HmacSigned>> {
    let r = spec.signing_secret_ref.as_ref();
    from_secret(
        spec.enabled,
        secrets,
        "resend.signingSecretRef",
        r,
        |secret| {
            let key = base64::engine::general_purpose::STANDARD
                .decode(secret.trim().trim_start_matches("whsec_"))
                .map_err(|_| SecretValueError::NotWhsec)?;
            Ok(SIGNATURE.webhook(NAME, key, parse))
        },
    )
}

fn parse(req: &Incoming) -> Result<Received, Rejection> {
    let body = json_object(&req.body)?;
    let id = req.header("svix-id").unwrap_or_default();
    Ok(Received::Events(events(id, body)))
}

/// `email.bounced` and `email.complained` into one event per recipient.
pub fn events(svix_id: &str, body: Value) -> Vec<BounceEvent> {
    let t = match str_at(&body, "/type") {
        Some("email.bounced") => match str_at(&body, "/data/bounce/type") {
            Some("Transient") | Some("Undetermined") => BounceType::Soft,
            _ => BounceType::Hard,
        },
        Some("email.complained") => BounceType::Complaint,
        _ => return Vec::new(),
    };
    let recipients: Vec<String> = match body.pointer("/data/to") {
        Some(Value::Array(to)) => to.iter().filter_map(|v| recipient(v.as_str())).collect(),
        Some(Value::String(s)) => recipient(Some(s)).into_iter().collect(),
        _ => Vec::new(),
    };
    let headers = body.pointer("/data/headers");
    let tags = body.pointer("/data/tags");
    let campaign = campaign_in(headers).or_else(|| campaign_in(tags));
    let subscriber = subscriber_in(headers).or_else(|| subscriber_in(tags));
    let created_at = time(body.get("created_at"));
    let why = why(&body, t);
    let single = recipients.len() == 1;
    recipients
        .into_iter()
        .map(|email| {
            let id = if single {
                svix_id.to_owned()
            } else {
                format!("{svix_id}:{email}")
            };
            let e = event(NAME, email, t, body.clone(), id);
            complete(
                e,
                (campaign, if single { subscriber } else { None }),
                created_at,
                why.clone(),
            )
        })
        .collect()
}

/// Resend sends through Amazon SES and passes on SES's `bounceSubType` as `bounce.subType`
/// (Event types, "email.bounced", https://resend.com/docs/dashboard/webhooks/event-types):
/// SES's own decision ([`bounce_classify::ses::reason`]) maps it, with `bounce.message` read
/// first, as for SES.
fn why(body: &Value, t: BounceType) -> Why {
    if t == BounceType::Complaint {
        return Why::of(Reason::Feedback);
    }
    let sub_type = str_at(body, "/data/bounce/subType");
    let mut why = Why::from_reply(None, None, None, str_at(body, "/data/bounce/message"));
    why.reason = bounce_classify::ses::reason(sub_type, why.reason);
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, SES_SUB_TYPE_ROWS, fixture};
    use serde_json::json;

    #[test]
    fn sub_types_row_by_row() {
        let rows = SES_SUB_TYPE_ROWS;
        assert_eq!(rows.len(), super::super::ses::SUB_TYPES.len());
        for &(sub_type, want) in rows {
            let body = json!({"type": "email.bounced", "created_at": "2026-01-02T03:04:05.000Z",
                "data": {"email_id": "e", "from": "news@example.com", "to": ["a@example.com"],
                    "subject": "Newsletter",
                    "bounce": {"type": "Permanent", "subType": sub_type, "message": GENERIC_REPLY}}});
            let e = events("msg_1", body).remove(0);
            assert_eq!(e.reason, Some(want), "{sub_type}");
            assert_eq!(e.meta["reason"], want.as_str(), "{sub_type}");
        }
    }

    #[test]
    fn full_events_carry_reason_and_diagnostic() {
        let vars = [
            ("EMAIL1", "a@example.net"),
            ("CAMPAIGN", "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"),
            ("BOUNCE_TYPE", "Permanent"),
        ];
        let e = events("msg_2", fixture("resend-bounced.json", &vars)).remove(0);
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(e.meta["reason"], "userunknown");
        assert!(
            e.meta["diagnostic"]
                .as_str()
                .unwrap()
                .starts_with("The recipient's email address is on the suppression list")
        );
        assert_eq!(e.meta["data"]["bounce"]["subType"], "Suppressed");
        let dmarc = json!({"type": "email.bounced", "data": {"to": ["a@example.com"],
            "bounce": {"type": "Permanent", "subType": "General",
                "message": "550 5.7.26 Unauthenticated email from example.org is not accepted due to domain's DMARC policy"}}});
        let e = events("msg_3", dmarc).remove(0);
        assert_eq!(e.reason, Some(Reason::AuthFailure));
        assert_eq!(e.meta["status"], "5.7.26");
        let complaint = json!({"type": "email.complained", "data": {"to": ["a@example.com"]}});
        assert_eq!(
            events("msg_4", complaint).remove(0).reason,
            Some(Reason::Feedback)
        );
    }
}
