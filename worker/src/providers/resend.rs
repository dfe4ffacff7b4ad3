//! Resend's webhooks, signed by Svix: `svix-id`, `svix-timestamp` and `svix-signature`
//! (space-separated `v1,<base64>` entries), HMAC-SHA256 of `id.timestamp.body` keyed by
//! the base64-decoded secret after `whsec_`, accepted within 5 minutes.

use base64::Engine;
use bounceops_api::ResendProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{
    campaign_in, check_timestamp, ct_eq, event, hmac_sha256, json_object, recipient, str_at,
    subscriber_in, time,
};
use super::{ConfigIssue, Context, Incoming, Provider, Received, Rejection, required_secret};
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

    fn check(&self, req: &Incoming) -> Result<(), Rejection> {
        let missing = |h| Rejection::Unauthorized(h);
        let id = req
            .header("svix-id")
            .ok_or(missing("missing svix-id header"))?;
        let timestamp = req
            .header("svix-timestamp")
            .ok_or(missing("missing svix-timestamp header"))?;
        let signatures = req
            .header("svix-signature")
            .ok_or(missing("missing svix-signature header"))?;
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
        check_timestamp(timestamp, req.now, TOLERANCE_SECONDS)
    }
}

impl Provider for Resend {
    type Verified = ();

    fn name(&self) -> &'static str {
        NAME
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
            e
        })
        .collect()
}
