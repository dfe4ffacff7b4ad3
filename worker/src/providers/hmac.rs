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
    /// timestamp only where `signatures` carries one. No tolerance: a scheme with a
    /// timestamp sets one ([`HmacScheme::tolerance`]).
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use chrono::{TimeZone, Utc};

    const WHOLE: HmacScheme =
        HmacScheme::new("x-sig", "missing x-sig", Signatures::Whole, Encoding::Hex);
    const PARAMS: HmacScheme = HmacScheme::new(
        "x-sig",
        "missing x-sig",
        Signatures::TimestampParams,
        Encoding::Hex,
    )
    .tolerance(300);
    const VERSIONED: HmacScheme = HmacScheme::new(
        "sig",
        "missing sig",
        Signatures::Versioned,
        Encoding::Base64,
    )
    .id("id", "missing id")
    .timestamp("ts", "missing ts")
    .tolerance(300);

    const NOW: i64 = 1_000_000;

    /// What `scheme`, keyed `key`, makes of a request with `headers` and the body `{}`:
    /// the check that refuses it, if any.
    fn check(scheme: &'static HmacScheme, headers: &[(&str, &str)]) -> Result<(), &'static str> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = Incoming {
            headers: map,
            query: None,
            body: bytes::Bytes::from_static(b"{}"),
            now: Utc.timestamp_opt(NOW, 0).unwrap(),
        };
        let auth = HmacSigned {
            scheme,
            key: b"key".to_vec(),
        };
        let admitted = auth.admit(&req.head());
        // `verify` is every check, `admit`'s included: what the head refuses, it refuses.
        let verified = auth.verify(&req);
        match (&admitted, &verified) {
            (Ok(Admitted::BodyToVerify), _) => {}
            (Err(Rejection::Unauthorized(a)), Err(Rejection::Unauthorized(v))) => {
                assert_eq!(a, v)
            }
            other => panic!("{other:?}"),
        }
        verified.map_err(|r| match r {
            Rejection::Unauthorized(check) => check,
            other => panic!("{other:?}"),
        })
    }

    fn mac(parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(b"key", parts)
    }

    #[test]
    fn the_whole_header_is_the_hex_hmac_of_the_body() {
        let sig = hex::encode(mac(&[b"{}"]));
        assert_eq!(check(&WHOLE, &[("x-sig", &sig.to_uppercase())]), Ok(()));
        let other = hex::encode(mac(&[b"{ }"]));
        assert_eq!(
            check(&WHOLE, &[("x-sig", &other)]),
            Err("signature does not match")
        );
        assert_eq!(
            check(&WHOLE, &[("x-sig", "not hex")]),
            Err("signature does not match")
        );
        assert_eq!(check(&WHOLE, &[]), Err("missing x-sig"));
    }

    #[test]
    fn timestamp_params_sign_the_timestamp_then_the_body_and_any_v1_admits() {
        let sig = hex::encode(mac(&[b"1000000", b".", b"{}"]));
        let header = format!("t=1000000, v1=00, v1={sig}");
        assert_eq!(check(&PARAMS, &[("x-sig", &header)]), Ok(()));
        let unsigned_t = format!("t=1000001,v1={sig}");
        assert_eq!(
            check(&PARAMS, &[("x-sig", &unsigned_t)]),
            Err("signature does not match")
        );
        assert_eq!(
            check(&PARAMS, &[("x-sig", &format!("v1={sig}"))]),
            Err("signature header has no t=")
        );
        assert_eq!(
            check(&PARAMS, &[("x-sig", "t=1000000")]),
            Err("signature header has no v1=")
        );
        let stale = hex::encode(mac(&[b"999699", b".", b"{}"]));
        assert_eq!(
            check(&PARAMS, &[("x-sig", &format!("t=999699,v1={stale}"))]),
            Err("signature timestamp outside the tolerance")
        );
        assert_eq!(check(&PARAMS, &[]), Err("missing x-sig"));
    }

    #[test]
    fn versioned_entries_sign_the_id_the_timestamp_and_the_body() {
        use base64::Engine;
        let b64 = |m: [u8; 32]| base64::engine::general_purpose::STANDARD.encode(m);
        let sig = b64(mac(&[b"m1", b".", b"1000000", b".", b"{}"]));
        let rotating = format!("v1,AAAA v1a,{sig} v1,{sig}");
        let signed = [("id", "m1"), ("ts", "1000000"), ("sig", rotating.as_str())];
        assert_eq!(check(&VERSIONED, &signed), Ok(()));
        let other_id = [("id", "m2"), ("ts", "1000000"), ("sig", rotating.as_str())];
        assert_eq!(
            check(&VERSIONED, &other_id),
            Err("signature does not match")
        );
        // Only `v1,` entries count.
        let unversioned = format!("v1a,{sig}");
        let wrong_version = [
            ("id", "m1"),
            ("ts", "1000000"),
            ("sig", unversioned.as_str()),
        ];
        assert_eq!(
            check(&VERSIONED, &wrong_version),
            Err("signature does not match")
        );
        // The headers are required in order, and the timestamp is checked before the body.
        assert_eq!(
            check(&VERSIONED, &[("ts", "1"), ("sig", "x")]),
            Err("missing id")
        );
        assert_eq!(
            check(&VERSIONED, &[("id", "m1"), ("sig", "x")]),
            Err("missing ts")
        );
        assert_eq!(
            check(&VERSIONED, &[("id", "m1"), ("ts", "1")]),
            Err("missing sig")
        );
        assert_eq!(
            check(&VERSIONED, &[("id", "m1"), ("ts", "1"), ("sig", "x")]),
            Err("signature timestamp outside the tolerance")
        );
    }
}
