//! The SNS message envelope and its signature: the string SNS signs, the algorithm of each
//! `SignatureVersion`, the RSA verification, and where a subscription may be confirmed.

use reqwest::Url;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, RsaParameters,
    UnparsedPublicKey,
};
use serde::Deserialize;

use crate::providers::Rejection;

/// The SNS message envelope. Field names are SNS's.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    #[serde(rename = "Type")]
    pub(super) kind: String,
    pub(super) message_id: String,
    pub(super) topic_arn: String,
    pub(super) message: String,
    pub(super) timestamp: String,
    #[serde(default)]
    pub(super) subject: Option<String>,
    #[serde(default)]
    pub(super) token: Option<String>,
    #[serde(rename = "SubscribeURL", default)]
    pub(super) subscribe_url: Option<String>,
    pub(super) signature_version: String,
    pub(super) signature: String,
    #[serde(rename = "SigningCertURL")]
    pub(super) signing_cert_url: String,
}

impl Envelope {
    pub(super) fn parse(body: &[u8]) -> Result<Envelope, Rejection> {
        serde_json::from_slice(body)
            .map_err(|e| Rejection::Malformed(format!("invalid SNS message: {e}")))
    }

    /// The bytes SNS signs: `Key\nValue\n` for a fixed list of keys, in this order.
    pub(super) fn string_to_sign(&self) -> Result<String, Rejection> {
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

/// An RSA public key as PKCS#1 DER, the form ring verifies with.
///
/// ring rather than the `rsa` crate verifies SNS signatures: measured on this project's
/// hardware, ring takes 24 µs per RSA-2048 verification against 202 µs, and SNS verifies
/// every notification (see BENCHMARKS.md, "Provider webhooks"). ring also refuses moduli
/// under 2048 bits, which AWS has not used for years.
pub struct RsaKey(Vec<u8>);

/// The algorithm of a `SignatureVersion`: 1 is SHA1withRSA, 2 SHA256withRSA.
pub(super) fn algorithm(version: &str) -> Result<&'static RsaParameters, Rejection> {
    match version {
        "1" => Ok(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
        "2" => Ok(&RSA_PKCS1_2048_8192_SHA256),
        _ => Err(Rejection::Unauthorized("unsupported SignatureVersion")),
    }
}

impl RsaKey {
    pub(super) fn new(pkcs1: Vec<u8>) -> RsaKey {
        RsaKey(pkcs1)
    }

    pub(super) fn verify(
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

/// The SubscribeURL must point at the host that signed it, so a signature can never make
/// the worker call elsewhere.
pub(super) fn same_origin(raw: &str, cert_url: &Url) -> Result<(), Rejection> {
    let url = Url::parse(raw).map_err(|_| Rejection::Unauthorized("SubscribeURL is not a URL"))?;
    if url.origin() != cert_url.origin() || !url.username().is_empty() || url.password().is_some() {
        return Err(Rejection::Unauthorized(
            "SubscribeURL is not on the signing certificate's host",
        ));
    }
    Ok(())
}
