//! Mailgun's webhooks: `{signature: {timestamp, token, signature}, event-data}` where the
//! signature is hex HMAC-SHA256(timestamp ‖ token) with the webhook signing key. The
//! signature does not cover the body, so each token is single-use (`replay`) and stale
//! timestamps are refused.

use bounceops_api::MailgunProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{
    campaign_in, check_timestamp, content_id, event, hex_matches, hmac_sha256, json, recipient,
    str_at, subscriber_in, time,
};
use super::replay::Nonces;
use super::{ConfigIssue, Context, Incoming, Provider, Received, Rejection, required_secret};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "mailgun";

pub struct Mailgun {
    key: Vec<u8>,
    tolerance_seconds: u32,
    nonces: Nonces,
}

impl Mailgun {
    pub fn load(
        spec: &MailgunProvider,
        secrets: &SecretsDir,
    ) -> Result<Option<Mailgun>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let key = required_secret(
            secrets,
            "mailgun.signingKeySecretRef",
            spec.signing_key_secret_ref.as_ref(),
        )?;
        Ok(Some(Mailgun {
            key: key.into_bytes(),
            tolerance_seconds: spec.tolerance_seconds.max(1),
            nonces: Nonces::default(),
        }))
    }

    /// The signature block; the body must be parsed to find it, but nothing else of it is
    /// used before the signature is checked.
    fn signature(body: &Value) -> Result<(&str, &str, &str), Rejection> {
        let field = |name: &str| {
            body.pointer(&format!("/signature/{name}"))
                .and_then(|v| v.as_str())
                .ok_or(Rejection::Unauthorized("missing signature block"))
        };
        Ok((field("timestamp")?, field("token")?, field("signature")?))
    }
}

impl Provider for Mailgun {
    /// The body, parsed to find the signature inside it.
    type Verified = Value;

    fn name(&self) -> &'static str {
        NAME
    }

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Value, Rejection>> {
        Box::pin(async move {
            let body = json(&req.body)?;
            let (timestamp, token, signature) = Mailgun::signature(&body)?;
            let expected = hmac_sha256(&self.key, &[timestamp.as_bytes(), token.as_bytes()]);
            if !hex_matches(&expected, signature) {
                return Err(Rejection::Unauthorized("signature does not match"));
            }
            check_timestamp(timestamp, req.now, self.tolerance_seconds)?;
            let fresh = self
                .nonces
                .claim(&ctx.store, NAME, token, &req.body, self.tolerance_seconds)
                .await?;
            if !fresh {
                return Err(Rejection::Unauthorized("signature token already used"));
            }
            Ok(body)
        })
    }

    fn parse(&self, _: &Incoming, body: Value) -> Result<Received, Rejection> {
        let data = body
            .get("event-data")
            .ok_or_else(|| Rejection::Malformed("missing event-data".into()))?;
        Ok(Received::Events(
            event_of(data.clone()).into_iter().collect(),
        ))
    }
}

pub fn event_of(data: Value) -> Option<BounceEvent> {
    let t = match str_at(&data, "/event")? {
        "failed" => match str_at(&data, "/severity") {
            Some("permanent") => BounceType::Hard,
            _ => BounceType::Soft,
        },
        "complained" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&data, "/recipient"))?;
    let id = str_at(&data, "/id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&data));
    let campaign = campaign_in(data.get("user-variables"))
        .or_else(|| campaign_in(data.pointer("/message/headers")));
    let subscriber = subscriber_in(data.get("user-variables"));
    let created_at = time(data.get("timestamp"));
    let mut e = event(NAME, email, t, data, id);
    e.campaign_uuid = campaign;
    e.subscriber_uuid = subscriber;
    e.created_at = created_at;
    Some(e)
}
