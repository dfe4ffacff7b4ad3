//! Forward Email's bounce webhook: `X-Webhook-Signature` is the hex HMAC-SHA256 of the raw
//! body with the account's webhook key.

use bounceops_api::ForwardemailProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{
    campaign_in, event, hex_matches, hmac_sha256, json_object, recipient, sha256_hex,
    subscriber_in, time,
};
use super::{ConfigIssue, Context, Incoming, Provider, Received, Rejection, required_secret};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "forwardemail";

/// Categories of failures that a retry will not fix.
const HARD_CATEGORIES: &[&str] = &["block", "recipient", "virus", "spam"];

pub struct Forwardemail {
    key: Vec<u8>,
}

impl Forwardemail {
    pub fn load(
        spec: &ForwardemailProvider,
        secrets: &SecretsDir,
    ) -> Result<Option<Forwardemail>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let key = required_secret(
            secrets,
            "forwardemail.keySecretRef",
            spec.key_secret_ref.as_ref(),
        )?;
        Ok(Some(Forwardemail {
            key: key.into_bytes(),
        }))
    }
}

impl Provider for Forwardemail {
    type Verified = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        let result = match req.header("x-webhook-signature") {
            None => Err(Rejection::Unauthorized(
                "missing X-Webhook-Signature header",
            )),
            Some(given) if hex_matches(&hmac_sha256(&self.key, &[&req.body]), given) => Ok(()),
            Some(_) => Err(Rejection::Unauthorized("signature does not match")),
        };
        Box::pin(std::future::ready(result))
    }

    fn parse(&self, req: &Incoming, _: ()) -> Result<Received, Rejection> {
        let body = json_object(&req.body)?;
        // Forward Email sends no event id; a retry repeats the body byte for byte.
        let id = format!("sha256:{}", sha256_hex(&req.body));
        Ok(Received::Events(event_of(body, id).into_iter().collect()))
    }
}

pub fn event_of(body: Value, id: String) -> Option<BounceEvent> {
    let email = recipient(body.get("recipient").and_then(Value::as_str))?;
    let category = body
        .pointer("/bounce/category")
        .and_then(Value::as_str)
        .unwrap_or("");
    let t = if HARD_CATEGORIES.contains(&category) {
        BounceType::Hard
    } else {
        BounceType::Soft
    };
    let campaign = campaign_in(body.get("headers"));
    let subscriber = subscriber_in(body.get("headers"));
    let created_at = time(body.get("bounced_at"));
    let mut e = event(NAME, email, t, body, id);
    e.campaign_uuid = campaign;
    e.subscriber_uuid = subscriber;
    e.created_at = created_at;
    Some(e)
}
