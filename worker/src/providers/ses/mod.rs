//! Amazon SES through SNS: the topic allowlist, the `Timestamp` tolerance, the SNS
//! signature (`sns`) with its certificates (`certs`), subscription handshakes, and SES
//! bounce and complaint notifications (`notification`).
//!
//! Everything that can refuse a message without the network does so before the signing
//! certificate is fetched: the message type, the topic, the signature version and the
//! timestamp.

mod certs;
mod notification;
mod sns;

use base64::Engine;
use bounceops_api::SesProvider;
use reqwest::Url;
use serde_json::Value;

pub use certs::{CertUrlPolicy, DEFAULT_CERT_URL_PATTERN, FAILED_FETCH_KEPT, public_key_of_pem};
pub use notification::{SUB_TYPES, events};
pub use sns::{Envelope, RsaKey};

use super::tolerance::check_rfc3339_timestamp;
use super::{
    Admitted, Checking, ConfigIssue, Context, Head, Incoming, Loaded, Provider, Received, Rejection,
};
use certs::Certificates;
use sns::{algorithm, same_origin};

pub const NAME: &str = "ses";

pub struct Ses {
    topics: Vec<String>,
    tolerance_seconds: u32,
    certs: Certificates,
}

/// SES needs no secret: SNS signs with AWS's certificates.
pub fn load(spec: &SesProvider) -> Loaded<Ses> {
    if !spec.enabled {
        return Ok(None);
    }
    let pattern = spec
        .cert_url_pattern
        .as_deref()
        .unwrap_or(DEFAULT_CERT_URL_PATTERN);
    // `validate` has compiled the user's pattern once already; the default is ours.
    let cert_urls = CertUrlPolicy::new(pattern)
        .map_err(|e| ConfigIssue::new("spec.providers.ses.certUrlPattern", e.to_string()))?;
    Ok(Some(Ses {
        topics: spec.topic_arns.clone(),
        tolerance_seconds: spec.tolerance_seconds.max(1),
        certs: Certificates::new(cert_urls),
    }))
}

impl Ses {
    fn check_topic(&self, topic: &str) -> Result<(), Rejection> {
        if self.topics.is_empty() || self.topics.iter().any(|t| t == topic) {
            Ok(())
        } else {
            Err(Rejection::Unauthorized("TopicArn is not in topicArns"))
        }
    }
}

impl Provider for Ses {
    /// The SNS envelope, parsed to check its signature.
    type Verified = Envelope;

    fn name(&self) -> &'static str {
        NAME
    }

    fn warnings(&self) -> Vec<String> {
        if self.topics.is_empty() {
            vec!["spec.providers.ses.topicArns is empty: messages of any SNS topic are accepted; list your topics".into()]
        } else {
            Vec::new()
        }
    }

    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        match head.header("x-amz-sns-message-type") {
            Some(_) => Ok(Admitted::BodyToVerify),
            None => Err(Rejection::Unauthorized(
                "missing x-amz-sns-message-type header",
            )),
        }
    }

    fn verify<'a>(&'a self, req: &'a Incoming, ctx: &'a Context) -> Checking<'a, Envelope> {
        Box::pin(async move {
            let header = req
                .header("x-amz-sns-message-type")
                .ok_or(Rejection::Unauthorized(
                    "missing x-amz-sns-message-type header",
                ))?;
            let env = Envelope::parse(&req.body)?;
            if env.kind != header {
                return Err(Rejection::Unauthorized(
                    "x-amz-sns-message-type does not match the message Type",
                ));
            }
            self.check_topic(&env.topic_arn)?;
            // Before the certificate: what needs no network refuses first.
            let algorithm = algorithm(&env.signature_version)?;
            check_rfc3339_timestamp(&env.timestamp, req.now, self.tolerance_seconds)?;
            let signed = env.string_to_sign()?;
            let signature = base64::engine::general_purpose::STANDARD
                .decode(env.signature.trim())
                .map_err(|_| Rejection::Unauthorized("Signature is not base64"))?;
            let key = self.certs.public_key(&env.signing_cert_url, ctx).await?;
            key.verify(algorithm, signed.as_bytes(), &signature)?;
            if env.kind == "SubscriptionConfirmation" {
                let url = env.subscribe_url.as_deref().unwrap_or_default();
                let cert_url = Url::parse(&env.signing_cert_url)
                    .map_err(|_| Rejection::Unauthorized("SigningCertURL is not a URL"))?;
                same_origin(url, &cert_url)?;
            }
            Ok(env)
        })
    }

    fn parse(&self, _: &Incoming, env: Envelope) -> Result<Received, Rejection> {
        match env.kind.as_str() {
            "SubscriptionConfirmation" => {
                let url = env.subscribe_url.as_deref().unwrap_or_default();
                let url = Url::parse(url)
                    .map_err(|_| Rejection::Malformed("SubscribeURL is not a URL".into()))?;
                tracing::info!(topic = %env.topic_arn, "confirming SNS subscription");
                Ok(Received::Confirm(url))
            }
            "UnsubscribeConfirmation" => {
                tracing::info!(topic = %env.topic_arn, "SNS subscription ended");
                Ok(Received::Events(Vec::new()))
            }
            _ => {
                let message: Value =
                    crate::storable::parse_json(env.message.as_bytes()).map_err(|e| {
                        Rejection::Malformed(format!("Message is not an SES notification: {e}"))
                    })?;
                Ok(Received::Events(events(&env.message_id, message)?))
            }
        }
    }
}
