//! Amazon SES through SNS: the SNS envelope's signature (versions 1 and 2), the
//! signing-certificate URL policy and cache, the topic allowlist, the `Timestamp`
//! tolerance, subscription handshakes, and SES bounce and complaint notifications
//! (`notificationType` or `eventType`).
//!
//! Everything that can refuse a message without the network does so before the signing
//! certificate is fetched: the message type, the topic, the signature version and the
//! timestamp. A fetch that failed is remembered for [`FAILED_FETCH_KEPT`], so that messages
//! naming a certificate that cannot be had do not each cost a fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use bounceops_api::SesProvider;
use futures::future::BoxFuture;
use regex::Regex;
use reqwest::Url;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, RsaParameters,
    UnparsedPublicKey,
};
use serde::Deserialize;
use serde_json::Value;
use x509_cert::der::DecodePem;
use x509_cert::der::oid::db::rfc5912::RSA_ENCRYPTION;

use super::common::{
    Reason, Why, campaign_in, check_rfc3339_timestamp, event, recipient, subscriber_in, time,
};
use super::{Admitted, ConfigIssue, Context, Head, Incoming, Provider, Received, Rejection};
use crate::event::{BounceEvent, BounceType};

pub const NAME: &str = "ses";

/// AWS's SNS endpoints, https only. The path is the one SNS uses for its signing
/// certificates; the whole URL must match.
pub const DEFAULT_CERT_URL_PATTERN: &str =
    r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/SimpleNotificationService-[A-Za-z0-9]+\.pem$";

/// Certificates are few (one per region and rotation); the bound only guards memory.
const MAX_CACHED_CERTS: usize = 64;
const MAX_CERT_BYTES: usize = 64 * 1024;
/// How long a certificate that could not be fetched (or used) is not fetched again: long
/// enough that a flood of messages naming it costs one fetch a minute, short enough that
/// SNS's retries (20 s apart by default) find it once the network is back.
pub const FAILED_FETCH_KEPT: Duration = Duration::from_secs(60);

pub struct Ses {
    topics: Vec<String>,
    cert_urls: CertUrlPolicy,
    tolerance_seconds: u32,
    certs: RwLock<HashMap<String, Arc<RsaKey>>>,
    failed: Mutex<HashMap<String, (Instant, CertFailure)>>,
}

/// Why a certificate could not be had, remembered for [`FAILED_FETCH_KEPT`].
#[derive(Debug, Clone, Copy)]
enum CertFailure {
    /// Not fetched (network, status, size): likely passing, so SNS should retry (503).
    Unreachable,
    /// Fetched, and not an RSA certificate (401).
    Unusable,
}

impl CertFailure {
    fn rejection(self) -> Rejection {
        match self {
            CertFailure::Unreachable => {
                Rejection::Retry("signing certificate could not be fetched, retry later")
            }
            CertFailure::Unusable => {
                Rejection::Unauthorized("signing certificate is not a usable RSA certificate")
            }
        }
    }
}

impl Ses {
    pub fn load(spec: &SesProvider) -> Result<Option<Ses>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let pattern = spec
            .cert_url_pattern
            .as_deref()
            .unwrap_or(DEFAULT_CERT_URL_PATTERN);
        // `validate` has compiled the user's pattern once already; the default is ours.
        let cert_urls = CertUrlPolicy::new(pattern).map_err(|e| {
            (
                "spec.providers.ses.certUrlPattern".to_owned(),
                e.to_string(),
            )
        })?;
        Ok(Some(Ses {
            topics: spec.topic_arns.clone(),
            cert_urls,
            tolerance_seconds: spec.tolerance_seconds.max(1),
            certs: RwLock::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        }))
    }

    /// The key of the certificate at `raw`, checked against the URL policy and fetched on
    /// first use. The cache is keyed by the exact text, so a hit is a URL that passed the
    /// policy before and is not checked again. A failure is kept for [`FAILED_FETCH_KEPT`]
    /// and answered again without a fetch.
    async fn public_key(&self, raw: &str, ctx: &Context) -> Result<Arc<RsaKey>, Rejection> {
        if let Some(key) = self.certs.read().expect("not poisoned").get(raw) {
            return Ok(key.clone());
        }
        let url = &self.cert_urls.check(raw).map_err(Rejection::Unauthorized)?;
        {
            let mut failed = self.failed.lock().expect("not poisoned");
            match failed.get(raw) {
                Some((at, why)) if at.elapsed() < FAILED_FETCH_KEPT => return Err(why.rejection()),
                Some(_) => {
                    failed.remove(raw);
                }
                None => {}
            }
        }
        match Ses::fetch(url, ctx).await {
            Ok(key) => {
                let key = Arc::new(key);
                let mut certs = self.certs.write().expect("not poisoned");
                if certs.len() >= MAX_CACHED_CERTS {
                    certs.clear();
                }
                certs.insert(raw.to_owned(), key.clone());
                Ok(key)
            }
            Err(why) => {
                let mut failed = self.failed.lock().expect("not poisoned");
                if failed.len() >= MAX_CACHED_CERTS {
                    failed.clear();
                }
                failed.insert(raw.to_owned(), (Instant::now(), why));
                Err(why.rejection())
            }
        }
    }

    /// Fetches and reads the certificate at `url`, which passed the URL policy.
    async fn fetch(url: &Url, ctx: &Context) -> Result<RsaKey, CertFailure> {
        // A certificate on an allowed host that cannot be read now is most likely a network
        // problem: 503 makes SNS retry instead of dropping the notification.
        let fetch_failed = |what: &str| {
            tracing::warn!(url = %url, "{what}");
            CertFailure::Unreachable
        };
        let mut response = ctx
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fetch_failed(&format!("certificate fetch failed: {e}")))?;
        if !response.status().is_success() {
            return Err(fetch_failed(&format!(
                "certificate fetch answered {}",
                response.status()
            )));
        }
        // Read in chunks so that a host that streams without end cannot fill memory.
        let mut pem = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fetch_failed(&format!("certificate read failed: {e}")))?
        {
            if pem.len() + chunk.len() > MAX_CERT_BYTES {
                return Err(fetch_failed("certificate too large"));
            }
            pem.extend_from_slice(&chunk);
        }
        public_key_of_pem(&pem).map_err(|e| {
            tracing::warn!(url = %url, error = %e, "unusable signing certificate");
            CertFailure::Unusable
        })
    }

    fn check_topic(&self, topic: &str) -> Result<(), Rejection> {
        if self.topics.is_empty() || self.topics.iter().any(|t| t == topic) {
            Ok(())
        } else {
            Err(Rejection::Unauthorized("TopicArn is not in topicArns"))
        }
    }
}

/// An RSA public key as PKCS#1 DER, the form ring verifies with.
///
/// ring rather than the `rsa` crate verifies SNS signatures: measured on this project's
/// hardware, ring takes 24 µs per RSA-2048 verification against 202 µs, and SNS verifies
/// every notification (see BENCHMARKS.md, "Provider webhooks"). ring also refuses moduli
/// under 2048 bits, which AWS has not used for years.
pub struct RsaKey(Vec<u8>);

/// The algorithm of a `SignatureVersion`: 1 is SHA1withRSA, 2 SHA256withRSA.
fn algorithm(version: &str) -> Result<&'static RsaParameters, Rejection> {
    match version {
        "1" => Ok(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
        "2" => Ok(&RSA_PKCS1_2048_8192_SHA256),
        _ => Err(Rejection::Unauthorized("unsupported SignatureVersion")),
    }
}

impl RsaKey {
    fn verify(
        &self,
        algorithm: &'static RsaParameters,
        signed: &[u8],
        signature: &[u8],
    ) -> Result<(), Rejection> {
        UnparsedPublicKey::new(algorithm, &self.0)
            .verify(signed, signature)
            .map_err(|_| Rejection::Unauthorized("signature does not verify"))
    }
}

/// The certificate's RSA public key.
pub fn public_key_of_pem(pem: &[u8]) -> Result<RsaKey, String> {
    let cert = x509_cert::Certificate::from_pem(pem).map_err(|e| e.to_string())?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(format!("the key is not RSA but {}", spki.algorithm.oid));
    }
    let pkcs1 = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the public key is not a whole number of bytes")?;
    Ok(RsaKey(pkcs1.to_vec()))
}

/// Which signing-certificate URLs may be fetched.
pub struct CertUrlPolicy(Regex);

impl CertUrlPolicy {
    pub fn new(pattern: &str) -> Result<CertUrlPolicy, regex::Error> {
        bounceops_api::providers::cert_url_regex(pattern).map(CertUrlPolicy)
    }

    pub fn check(&self, raw: &str) -> Result<Url, &'static str> {
        let url = Url::parse(raw).map_err(|_| "SigningCertURL is not a URL")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("SigningCertURL must not carry user info");
        }
        if url.query().is_some() || url.fragment().is_some() || raw.contains(['?', '#', '@']) {
            return Err("SigningCertURL must not carry a query or fragment");
        }
        // The raw text is matched, not the parsed URL: the parser normalises (case, dots,
        // percent-encoding) and a check must see what was signed.
        if !self.0.is_match(raw) {
            return Err("SigningCertURL does not match certUrlPattern");
        }
        Ok(url)
    }
}

/// The SNS message envelope. Field names are SNS's.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    message: String,
    timestamp: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(rename = "SubscribeURL", default)]
    subscribe_url: Option<String>,
    signature_version: String,
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
}

impl Envelope {
    fn parse(body: &[u8]) -> Result<Envelope, Rejection> {
        serde_json::from_slice(body)
            .map_err(|e| Rejection::Malformed(format!("invalid SNS message: {e}")))
    }

    /// The bytes SNS signs: `Key\nValue\n` for a fixed list of keys, in this order.
    fn string_to_sign(&self) -> Result<String, Rejection> {
        let mut out = String::with_capacity(self.message.len() + 512);
        let mut pair = |k: &str, v: &str| {
            out.push_str(k);
            out.push('\n');
            out.push_str(v);
            out.push('\n');
        };
        match self.kind.as_str() {
            "Notification" => {
                pair("Message", &self.message);
                pair("MessageId", &self.message_id);
                if let Some(s) = &self.subject {
                    pair("Subject", s);
                }
                pair("Timestamp", &self.timestamp);
                pair("TopicArn", &self.topic_arn);
                pair("Type", &self.kind);
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
                let missing = || Rejection::Malformed("SubscribeURL and Token are required".into());
                pair("Message", &self.message);
                pair("MessageId", &self.message_id);
                pair(
                    "SubscribeURL",
                    self.subscribe_url.as_deref().ok_or_else(missing)?,
                );
                pair("Timestamp", &self.timestamp);
                pair("Token", self.token.as_deref().ok_or_else(missing)?);
                pair("TopicArn", &self.topic_arn);
                pair("Type", &self.kind);
            }
            other => {
                return Err(Rejection::Malformed(format!(
                    "unknown SNS message type {other:?}"
                )));
            }
        }
        Ok(out)
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

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Envelope, Rejection>> {
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
            let key = self.public_key(&env.signing_cert_url, ctx).await?;
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

/// SES's `bounceSubType` table and hard/soft rule live in the classifier, shared with SES's
/// bounce mail ([`bounce_classify::ses`]).
pub use bounce_classify::ses::SUB_TYPES;

/// The SubscribeURL must point at the host that signed it, so a signature can never make
/// the worker call elsewhere.
fn same_origin(raw: &str, cert_url: &Url) -> Result<(), Rejection> {
    let url = Url::parse(raw).map_err(|_| Rejection::Unauthorized("SubscribeURL is not a URL"))?;
    if url.origin() != cert_url.origin() || !url.username().is_empty() || url.password().is_some() {
        return Err(Rejection::Unauthorized(
            "SubscribeURL is not on the signing certificate's host",
        ));
    }
    Ok(())
}

/// SES's notification (or event-publishing record) into one event per recipient. Types
/// other than Bounce and Complaint (Delivery, Send, Open, ...) give no event.
pub fn events(message_id: &str, message: Value) -> Result<Vec<BounceEvent>, Rejection> {
    let kind = message
        .get("notificationType")
        .or_else(|| message.get("eventType"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Rejection::Malformed("Message has neither notificationType nor eventType".into())
        })?;
    let mail = message.get("mail");
    let headers = mail
        .filter(|m| m.get("headersTruncated") != Some(&Value::Bool(true)))
        .and_then(|m| m.get("headers"));
    let campaign = campaign_in(headers);
    let subscriber = subscriber_in(headers);
    let mut found: Vec<(String, BounceType, Option<&Value>, Why)> = Vec::new();
    match kind {
        "Bounce" => {
            let bounce = message.get("bounce");
            let bounce_type = bounce
                .and_then(|b| b.get("bounceType"))
                .and_then(Value::as_str)
                .unwrap_or("Undetermined");
            let sub_type = bounce
                .and_then(|b| b.get("bounceSubType"))
                .and_then(Value::as_str);
            for r in list(bounce, "bouncedRecipients") {
                let Some(email) = recipient(r.get("emailAddress").and_then(Value::as_str)) else {
                    continue;
                };
                let status = r.get("status").and_then(Value::as_str).unwrap_or("");
                let t = bounce_classify::ses::bounce_type(bounce_type, Some(status));
                let diagnostic = r.get("diagnosticCode").and_then(Value::as_str);
                // SES names the receiving server by address only, for the whole bounce.
                let remote = bounce
                    .and_then(|b| b.get("remoteMtaIp"))
                    .and_then(Value::as_str);
                let mut why =
                    Why::from_reply(None, Some(status), None, diagnostic).remote_mta(remote);
                why.reason = bounce_classify::ses::reason(sub_type, why.reason);
                found.push((email, t, bounce.and_then(|b| b.get("timestamp")), why));
            }
        }
        "Complaint" => {
            let complaint = message.get("complaint");
            for r in list(complaint, "complainedRecipients") {
                if let Some(email) = recipient(r.get("emailAddress").and_then(Value::as_str)) {
                    found.push((
                        email,
                        BounceType::Complaint,
                        complaint.and_then(|c| c.get("timestamp")),
                        Why::of(Reason::Feedback),
                    ));
                }
            }
        }
        _ => return Ok(Vec::new()),
    }
    let one_recipient = found.len() == 1;
    // The timestamps borrow from `message`, which the last event then takes as its meta.
    let found: Vec<(String, BounceType, _, Why)> = found
        .into_iter()
        .map(|(email, t, at, why)| (email, t, time(at), why))
        .collect();
    let mut message = Some(message);
    let last = found.len().saturating_sub(1);
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(i, (email, t, created_at, why))| {
            // Each recipient is its own bounce; a retry repeats MessageId and recipient.
            let id = if one_recipient {
                message_id.to_owned()
            } else {
                format!("{message_id}:{email}")
            };
            let meta = if i == last {
                message.take().unwrap_or_default()
            } else {
                message.clone().unwrap_or_default()
            };
            let mut e = event(NAME, email, t, meta, id);
            e.campaign_uuid = campaign;
            e.subscriber_uuid = if one_recipient { subscriber } else { None };
            e.created_at = created_at;
            why.apply(&mut e);
            e
        })
        .collect())
}

fn list<'a>(parent: Option<&'a Value>, key: &str) -> impl Iterator<Item = &'a Value> {
    parent
        .and_then(|p| p.get(key))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::providers::common::testing::{GENERIC_REPLY, fixture};

    fn bounce(sub_type: &str, status: &str, diagnostic: &str) -> Value {
        json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Transient", "bounceSubType": sub_type,
                "timestamp": "2026-01-02T03:04:05.000Z",
                "bouncedRecipients": [{"emailAddress": "a@example.com", "action": "failed",
                    "status": status, "diagnosticCode": format!("smtp; {diagnostic}")}]},
            "mail": {"messageId": "m", "headersTruncated": false, "headers": []}
        })
    }

    /// SES delivers the same notification as a webhook or as mail (an SNS e-mail
    /// subscription read from a bounce mailbox): both ways give one type and one reason.
    #[test]
    fn by_mail_and_by_webhook_alike() {
        for (kind, sub_type, status, diagnostic) in [
            ("Permanent", "General", "5.1.1", "550 5.1.1 user unknown"),
            ("Transient", "General", "5.4.4", "550 5.4.4 unable to route"),
            (
                "Undetermined",
                "Undetermined",
                "5.4.4",
                "550 5.4.4 unable to route",
            ),
            ("Transient", "MailboxFull", "4.2.2", GENERIC_REPLY),
            (
                "Permanent",
                "Suppressed",
                "5.1.1",
                "Amazon SES did not send",
            ),
            ("Transient", "General", "4.0.0", GENERIC_REPLY),
        ] {
            let mut notification = bounce(sub_type, status, diagnostic);
            notification["bounce"]["bounceType"] = kind.into();
            let by_webhook = &events("m", notification.clone()).unwrap()[0];
            let mail = format!(
                "From: no-reply@sns.amazonaws.com\r\nTo: bounces@example.com\r\n\
                 Subject: AWS Notification Message\r\nContent-Type: text/plain\r\n\r\n{notification}\r\n"
            );
            let by_mail = bounce_classify::classify(mail.as_bytes());
            let r = &by_mail.recipients[0];
            assert_eq!(
                (r.bounce_type, r.reason),
                (by_webhook.bounce_type, by_webhook.reason.unwrap()),
                "{kind} {sub_type} {status}"
            );
        }
    }

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
        assert_eq!(
            rows.len(),
            SUB_TYPES.len(),
            "a row of SUB_TYPES is untested"
        );
        for (sub_type, want) in rows {
            let e = &events("m", bounce(sub_type, "5.0.0", GENERIC_REPLY)).unwrap()[0];
            assert_eq!(e.reason, Some(want), "{sub_type}");
            assert_eq!(e.meta["reason"], want.as_str(), "{sub_type}");
        }
    }

    #[test]
    fn the_reply_outranks_the_sub_type_except_on_ses_suppressions() {
        let dmarc = "550 5.7.1 rejected due to example.org's DMARC policy";
        let e = &events("m", bounce("NoEmail", "5.7.1", dmarc)).unwrap()[0];
        assert_eq!(e.reason, Some(Reason::AuthFailure));
        // SES's own sentence under a 5.1.1 does not make the account's list "userunknown".
        let ses = "Amazon SES did not send the message to this address because it is on the suppression list for your account.";
        let e = &events("m", bounce("OnAccountSuppressionList", "5.1.1", ses)).unwrap()[0];
        assert_eq!(e.reason, Some(Reason::OnHold));
        assert_eq!(e.meta["status"], "5.1.1");
    }

    #[test]
    fn full_notifications_carry_reason_status_and_diagnostic() {
        let campaign = "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f";
        let vars = [
            ("EMAIL1", "a@example.net"),
            ("EMAIL2", "b@example.net"),
            ("CAMPAIGN", campaign),
        ];
        let events = events("m-1", fixture("ses-bounce.json", &vars)).unwrap();
        assert_eq!(events.len(), 2);
        for e in &events {
            assert_eq!(e.reason, Some(Reason::UserUnknown));
            assert_eq!(e.meta["reason"], "userunknown");
            assert_eq!(e.meta["status"], "5.1.1");
            assert_eq!(e.meta["diagnostic"], "smtp; 550 5.1.1 user unknown");
            assert_eq!(e.meta["remote_mta"], "192.0.2.25");
            // The notification is still all there.
            assert_eq!(e.meta["bounce"]["bounceSubType"], "General");
            assert_eq!(e.meta["mail"]["messageId"], "0100017f-mail-message-id");
        }
        let complaint = events_of_complaint(&vars);
        assert_eq!(complaint.reason, Some(Reason::Feedback));
        assert_eq!(complaint.meta["reason"], "feedback");
        assert!(complaint.meta.get("status").is_none());
        assert_eq!(
            complaint.meta["complaint"]["complaintFeedbackType"],
            "abuse"
        );
    }

    fn events_of_complaint(vars: &[(&str, &str)]) -> BounceEvent {
        events("m-2", fixture("ses-complaint-event.json", vars))
            .unwrap()
            .remove(0)
    }

    fn default_policy() -> CertUrlPolicy {
        CertUrlPolicy::new(DEFAULT_CERT_URL_PATTERN).unwrap()
    }

    #[test]
    fn default_pattern_accepts_aws_hosts() {
        let p = default_policy();
        for ok in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc123.pem",
        ] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn default_pattern_rejects_look_alikes() {
        let p = default_policy();
        for bad in [
            "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-abc.pem",
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com@evil.test/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem#frag",
            "https://evil.test/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/other.pem",
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.evilamazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem/../x",
            "ftp://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        ] {
            assert!(p.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_pattern_is_anchored() {
        let p = CertUrlPolicy::new(r"http://127\.0\.0\.1:\d+/cert\.pem").unwrap();
        assert!(p.check("http://127.0.0.1:8080/cert.pem").is_ok());
        assert!(p.check("http://127.0.0.1:8080/cert.pem.evil").is_err());
        assert!(
            p.check("http://x.test/http://127.0.0.1:1/cert.pem")
                .is_err()
        );
    }

    #[test]
    fn bounce_with_several_recipients_and_campaign() {
        let campaign = "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f";
        let msg = json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Transient", "timestamp": "2026-01-02T03:04:05.000Z",
                "bouncedRecipients": [
                    {"emailAddress": "A@example.com", "status": "5.4.4"},
                    {"emailAddress": "b@example.com", "status": "4.2.2"}]},
            "mail": {"headersTruncated": false,
                     "headers": [{"name": "X-Listmonk-Campaign", "value": campaign}]}
        });
        let events = events("m-1", msg).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].bounce_type, BounceType::Hard);
        assert_eq!(events[1].bounce_type, BounceType::Soft);
        assert_eq!(events[0].event_id, "m-1:a@example.com");
        assert_eq!(events[1].campaign_uuid.unwrap().to_string(), campaign);
        assert!(events[0].created_at.is_some());
    }

    #[test]
    fn truncated_headers_are_not_trusted_and_deliveries_ignored() {
        let msg = json!({"eventType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "c@example.com"}]},
            "mail": {"headersTruncated": true,
                     "headers": [{"name": "X-Listmonk-Campaign", "value": "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"}]}});
        let e = events("m-2", msg).unwrap();
        assert_eq!(e[0].bounce_type, BounceType::Complaint);
        assert_eq!(e[0].campaign_uuid, None);
        assert_eq!(e[0].event_id, "m-2");
        assert!(
            events("m-3", json!({"notificationType": "Delivery"}))
                .unwrap()
                .is_empty()
        );
        assert!(events("m-4", json!({"bounce": {}})).is_err());
    }
}
