//! Keyed HMAC-SHA256 signatures in request headers, written once and described per
//! provider as data ([`HmacScheme`]): which headers carry the signature, its id and its
//! timestamp, how the signatures are written, and the tolerance of the timestamp. What is
//! signed follows from that: the id and the timestamp the scheme has, then the raw body,
//! joined by `.` (the convention Svix and Stripe-style `t=…,v1=…` headers share).

use base64::Engine;
use hmac::{Hmac as HmacOf, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::tolerance::check_timestamp;
use super::webhook::{Authenticate, Webhook};
use super::{Admitted, Head, Incoming, Received, Rejection};

/// HMAC-SHA256 over the concatenation of `parts` (no copy of the body is made).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacOf<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality; lengths are not secret.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `given` (hex, any case) is the HMAC `expected`.
pub fn hex_matches(expected: &[u8], given: &str) -> bool {
    match hex::decode(given.trim()) {
        Ok(bytes) => ct_eq(expected, &bytes),
        Err(_) => false,
    }
}

/// A header a scheme requires, and what a request without it is told (a metric label).
pub struct Required {
    header: &'static str,
    missing: &'static str,
}

/// How the signatures are written in their header.
pub enum Signatures {
    /// The whole header is one signature.
    Whole,
    /// `t=<unix>,v1=<signature>,…`: the signed timestamp and one or more signatures.
    TimestampParams,
    /// Space-separated `v1,<signature>` entries (several while a secret is rotated).
    Versioned,
}

/// How one signature is encoded.
pub enum Encoding {
    Hex,
    Base64,
}

/// One provider's HMAC-SHA256 header signature.
pub struct HmacScheme {
    /// A header with an id the signature covers (before the timestamp).
    id: Option<Required>,
    /// A header with the signed timestamp (Unix seconds), when not in the signature header.
    timestamp: Option<Required>,
    signature: Required,
    signatures: Signatures,
    encoding: Encoding,
    /// How far a signed timestamp may be from the worker's clock, either way.
    tolerance_seconds: u32,
}

/// What the head of a request signed by a scheme holds.
struct SignedHead<'a> {
    id: Option<&'a str>,
    timestamp: Option<&'a str>,
    signatures: Vec<&'a str>,
}

impl HmacScheme {
    /// The signature(s) in `header`, refused with `missing` without it; no id, and a
    /// timestamp only where `signatures` carries one.
    pub const fn new(
        header: &'static str,
        missing: &'static str,
        signatures: Signatures,
        encoding: Encoding,
    ) -> HmacScheme {
        HmacScheme {
            id: None,
            timestamp: None,
            signature: Required { header, missing },
            signatures,
            encoding,
            tolerance_seconds: 0,
        }
    }

    /// The id in `header` is signed first.
    pub const fn id(mut self, header: &'static str, missing: &'static str) -> HmacScheme {
        self.id = Some(Required { header, missing });
        self
    }

    /// The timestamp in `header` is signed after the id.
    pub const fn timestamp(mut self, header: &'static str, missing: &'static str) -> HmacScheme {
        self.timestamp = Some(Required { header, missing });
        self
    }

    /// A signed timestamp is accepted within `seconds` of the clock.
    pub const fn tolerance(mut self, seconds: u32) -> HmacScheme {
        self.tolerance_seconds = seconds;
        self
    }

    /// The webhook of a provider that signs with this scheme and `key`.
    pub fn webhook(
        &'static self,
        name: &'static str,
        key: Vec<u8>,
        parse: fn(&Incoming) -> Result<Received, Rejection>,
    ) -> Webhook<HmacSigned> {
        Webhook::new(name, HmacSigned { scheme: self, key }, parse)
    }

    /// The signed values of the head, the timestamp within the tolerance: a request with
    /// a missing header, or a replay, is refused before its body is read.
    fn signed_head<'a>(&self, head: &Head<'a>) -> Result<SignedHead<'a>, Rejection> {
        let required = |r: &Required| {
            head.header(r.header)
                .ok_or(Rejection::Unauthorized(r.missing))
        };
        let id = self.id.as_ref().map(required).transpose()?;
        let mut timestamp = self.timestamp.as_ref().map(required).transpose()?;
        let header = required(&self.signature)?;
        let signatures = match self.signatures {
            Signatures::Whole => vec![header],
            Signatures::Versioned => header
                .split_whitespace()
                .filter_map(|s| s.strip_prefix("v1,"))
                .collect(),
            Signatures::TimestampParams => {
                let mut v1 = Vec::new();
                for part in header.split(',') {
                    match part.trim().split_once('=') {
                        Some(("t", value)) => timestamp = Some(value.trim()),
                        Some(("v1", value)) => v1.push(value.trim()),
                        _ => {}
                    }
                }
                if timestamp.is_none() {
                    return Err(Rejection::Unauthorized("signature header has no t="));
                }
                if v1.is_empty() {
                    return Err(Rejection::Unauthorized("signature header has no v1="));
                }
                v1
            }
        };
        if let Some(t) = timestamp {
            check_timestamp(t, head.now, self.tolerance_seconds)?;
        }
        Ok(SignedHead {
            id,
            timestamp,
            signatures,
        })
    }

    fn matches(&self, expected: &[u8], given: &str) -> bool {
        match self.encoding {
            Encoding::Hex => hex_matches(expected, given),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(given.trim())
                .is_ok_and(|given| ct_eq(expected, &given)),
        }
    }
}

/// A scheme with the provider's key: the authentication of a signed webhook.
pub struct HmacSigned {
    scheme: &'static HmacScheme,
    key: Vec<u8>,
}

impl Authenticate for HmacSigned {
    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        self.scheme.signed_head(head)?;
        Ok(Admitted::BodyToVerify)
    }

    fn verify(&self, req: &Incoming) -> Result<(), Rejection> {
        let signed = self.scheme.signed_head(&req.head())?;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(5);
        for value in [signed.id, signed.timestamp].into_iter().flatten() {
            parts.extend([value.as_bytes(), b"."]);
        }
        parts.push(&req.body);
        let expected = hmac_sha256(&self.key, &parts);
        // Any one signature that matches admits: providers send several while a key is
        // rotated.
        if !signed
            .signatures
            .iter()
            .any(|given| self.scheme.matches(&expected, given))
        {
            return Err(Rejection::Unauthorized("signature does not match"));
        }
        Ok(())
    }
}
