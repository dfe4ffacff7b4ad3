//! Postmark's bounce and spam-complaint webhooks: HTTP Basic credentials in the webhook
//! URL, one record per request.

use bounceops_api::PostmarkProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{campaign_in, event, json, recipient, time};
use super::{ConfigIssue, Context, Incoming, Provider, Received, Rejection, required_secret};
use crate::auth::{AuthError, Credentials};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "postmark";

pub struct Postmark {
    credentials: Credentials,
}

impl Postmark {
    pub fn load(
        spec: &PostmarkProvider,
        secrets: &SecretsDir,
    ) -> Result<Option<Postmark>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let field = "postmark.credentialsSecretRef";
        let text = required_secret(secrets, field, spec.credentials_secret_ref.as_ref())?;
        let credentials =
            Credentials::parse(&text).map_err(|m| (format!("spec.providers.{field}"), m))?;
        Ok(Some(Postmark { credentials }))
    }
}

impl Provider for Postmark {
    type Verified = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        let result = self
            .credentials
            .verify_header(req.header("authorization"))
            .map_err(|e| match e {
                AuthError::Missing => Rejection::Unauthorized("missing Basic credentials"),
                AuthError::Wrong => Rejection::Unauthorized("Basic credentials do not match"),
            });
        Box::pin(std::future::ready(result))
    }

    fn parse(&self, req: &Incoming, _: ()) -> Result<Received, Rejection> {
        let record = json(&req.body)?;
        if !record.is_object() {
            return Err(Rejection::Malformed(
                "invalid payload: Postmark sends one record object".into(),
            ));
        }
        Ok(Received::Events(events(record).into_iter().collect()))
    }
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
        _ => super::common::content_id(&record),
    };
    let campaign = campaign_in(record.get("Metadata"));
    let created_at = time(record.get("BouncedAt"));
    let mut e = event(NAME, email, t, record, id);
    e.campaign_uuid = campaign;
    e.created_at = created_at;
    Some(e)
}
