//! Resend's webhooks, signed by Svix: `svix-id`, `svix-timestamp` and `svix-signature`
//! (space-separated `v1,<base64>` entries), HMAC-SHA256 of `id.timestamp.body` keyed by
//! the base64-decoded secret after `whsec_`, accepted within 5 minutes.

use base64::Engine;
use bounceops_api::ResendProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{
    Reason, Why, campaign_in, check_timestamp, ct_eq, event, hmac_sha256, json_object, recipient,
    str_at, subscriber_in, time,
};
use super::{
    Admitted, ConfigIssue, Context, Head, Incoming, Provider, Received, Rejection, required_secret,
};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "resend";
const TOLERANCE_SECONDS: u32 = 300;

pub struct Resend {
    key: Vec<u8>,
}

impl Resend {
    pub fn load(
        spec: &ResendProvider,
        secrets: &SecretsDir,
    ) -> Result<Option<Resend>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let field = "resend.signingSecretRef";
        let secret = required_secret(secrets, field, spec.signing_secret_ref.as_ref())?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim().trim_start_matches("whsec_"))
            .map_err(|_| {
                (
                    format!("spec.providers.{field}"),
                    "the secret is not whsec_ followed by base64".to_owned(),
                )
            })?;
        Ok(Some(Resend { key }))
    }

    /// The id, timestamp and signatures of the head, the timestamp within the tolerance:
    /// a replay is refused before its body is read.
    fn signed_head<'a>(head: &Head<'a>) -> Result<(&'a str, &'a str, &'a str), Rejection> {
        let missing = |h| Rejection::Unauthorized(h);
        let id = head
            .header("svix-id")
            .ok_or(missing("missing svix-id header"))?;
        let timestamp = head
            .header("svix-timestamp")
            .ok_or(missing("missing svix-timestamp header"))?;
        let signatures = head
            .header("svix-signature")
            .ok_or(missing("missing svix-signature header"))?;
        check_timestamp(timestamp, head.now, TOLERANCE_SECONDS)?;
        Ok((id, timestamp, signatures))
    }

    fn check(&self, req: &Incoming) -> Result<(), Rejection> {
        let (id, timestamp, signatures) = Resend::signed_head(&req.head())?;
        let expected = hmac_sha256(
            &self.key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", &req.body],
        );
        // Several signatures while a secret is rotated; any valid v1 one admits.
        let matched = signatures
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .any(|given| ct_eq(&expected, &given));
        if !matched {
            return Err(Rejection::Unauthorized("signature does not match"));
        }
        Ok(())
    }
}

impl Provider for Resend {
    type Verified = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        Resend::signed_head(head)?;
        Ok(Admitted::BodyToVerify)
    }

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(std::future::ready(self.check(req)))
    }

    fn parse(&self, req: &Incoming, _: ()) -> Result<Received, Rejection> {
        let body = json_object(&req.body)?;
        let id = req.header("svix-id").unwrap_or_default();
        Ok(Received::Events(events(id, body)))
    }
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
            let mut e = event(NAME, email, t, body.clone(), id);
            e.campaign_uuid = campaign;
            e.subscriber_uuid = if single { subscriber } else { None };
            e.created_at = created_at;
            why.clone().apply(&mut e);
            e
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
    use crate::providers::common::testing::{GENERIC_REPLY, fixture};
    use serde_json::json;

    #[test]
    fn sub_types_row_by_row() {
        let rows = [
            ("Undetermined", Reason::OnHold),
            ("General", Reason::OnHold),
            ("NoEmail", Reason::UserUnknown),
            ("Suppressed", Reason::UserUnknown),
            ("OnAccountSuppressionList", Reason::OnHold),
            ("MailboxFull", Reason::MailboxFull),
            ("MessageTooLarge", Reason::MesgTooBig),
            ("ContentRejected", Reason::ContentError),
            ("AttachmentRejected", Reason::ContentError),
        ];
        assert_eq!(rows.len(), super::super::ses::SUB_TYPES.len());
        for (sub_type, want) in rows {
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
