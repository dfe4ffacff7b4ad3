//! Lettermint's webhooks: `X-Lettermint-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of
//! `<t>.<body>`, accepted within ±300 seconds.

use bounceops_api::LettermintProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{
    campaign_in, check_timestamp, content_id, event, hex_matches, hmac_sha256, json_object,
    recipient, str_at, subscriber_in, time,
};
use super::{ConfigIssue, Context, Incoming, Provider, Received, Rejection, required_secret};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "lettermint";
const TOLERANCE_SECONDS: u32 = 300;

pub struct Lettermint {
    key: Vec<u8>,
}

impl Lettermint {
    pub fn load(
        spec: &LettermintProvider,
        secrets: &SecretsDir,
    ) -> Result<Option<Lettermint>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let key = required_secret(
            secrets,
            "lettermint.signingKeySecretRef",
            spec.signing_key_secret_ref.as_ref(),
        )?;
        Ok(Some(Lettermint {
            key: key.into_bytes(),
        }))
    }

    fn check(&self, req: &Incoming) -> Result<(), Rejection> {
        let header = req
            .header("x-lettermint-signature")
            .ok_or(Rejection::Unauthorized(
                "missing X-Lettermint-Signature header",
            ))?;
        let mut t = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => t = Some(value.trim()),
                Some(("v1", value)) => v1.push(value.trim()),
                _ => {}
            }
        }
        let t = t.ok_or(Rejection::Unauthorized("signature header has no t="))?;
        if v1.is_empty() {
            return Err(Rejection::Unauthorized("signature header has no v1="));
        }
        let expected = hmac_sha256(&self.key, &[t.as_bytes(), b".", &req.body]);
        if !v1.iter().any(|given| hex_matches(&expected, given)) {
            return Err(Rejection::Unauthorized("signature does not match"));
        }
        check_timestamp(t, req.now, TOLERANCE_SECONDS)
    }
}

impl Provider for Lettermint {
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
        Ok(Received::Events(event_of(body).into_iter().collect()))
    }
}

pub fn event_of(body: Value) -> Option<BounceEvent> {
    let t = match str_at(&body, "/event")? {
        "message.hard_bounced" => BounceType::Hard,
        "message.soft_bounced" => BounceType::Soft,
        "message.spam_complaint" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&body, "/data/recipient"))?;
    let id = str_at(&body, "/id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&body));
    let headers = body.pointer("/data/headers");
    let metadata = body.pointer("/data/metadata");
    let campaign = campaign_in(headers).or_else(|| campaign_in(metadata));
    let subscriber = subscriber_in(headers).or_else(|| subscriber_in(metadata));
    let created_at = time(body.get("timestamp"));
    let mut e = event(NAME, email, t, body, id);
    e.campaign_uuid = campaign;
    e.subscriber_uuid = subscriber;
    e.created_at = created_at;
    Some(e)
}
