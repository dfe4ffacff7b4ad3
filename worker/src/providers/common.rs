//! Helpers the provider adapters share: HMAC and constant-time comparison, timestamp
//! tolerances, listmonk's campaign and subscriber ids found in headers or metadata,
//! credentials in the webhook URL, the construction of `BounceEvent`s, and why a bounce
//! happened (`Why`: a provider's code looked up in its table, or the remote server's reply
//! read by the classifier).

pub use bounce_classify::Reason;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{Admitted, ConfigIssue, Head, Rejection, required_secret};
use crate::auth::{AuthError, Credentials};
use crate::event::{BounceEvent, BounceType};
use crate::evidence::Evidence;
use crate::secrets::SecretsDir;

pub const CAMPAIGN_HEADER: &str = "X-Listmonk-Campaign";
pub const SUBSCRIBER_HEADER: &str = "X-Listmonk-Subscriber";

/// HMAC-SHA256 over the concatenation of `parts` (no copy of the body is made).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
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

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuses a signed timestamp (Unix seconds) further than `tolerance` from `now`, either
/// way: a clock skewed into the future is as suspicious as a replay from the past.
pub fn check_timestamp(
    timestamp: &str,
    now: DateTime<Utc>,
    tolerance_seconds: u32,
) -> Result<(), Rejection> {
    let t: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Rejection::Unauthorized("signature timestamp is not a number"))?;
    check_age(t, now, tolerance_seconds)
}

/// [`check_timestamp`] for an RFC 3339 time (SNS's `Timestamp`).
pub fn check_rfc3339_timestamp(
    timestamp: &str,
    now: DateTime<Utc>,
    tolerance_seconds: u32,
) -> Result<(), Rejection> {
    let t = DateTime::parse_from_rfc3339(timestamp.trim())
        .map_err(|_| Rejection::Unauthorized("signature timestamp is not a time"))?;
    check_age(t.timestamp(), now, tolerance_seconds)
}

/// Refuses a time (Unix seconds) further than `tolerance` from `now`.
fn check_age(t: i64, now: DateTime<Utc>, tolerance_seconds: u32) -> Result<(), Rejection> {
    // abs_diff: the timestamp is the sender's, any i64 at all; `(now - t).abs()` overflows
    // (a panic in a debug build) for t near i64::MIN or MAX.
    if now.timestamp().abs_diff(t) > u64::from(tolerance_seconds) {
        return Err(Rejection::Unauthorized(
            "signature timestamp outside the tolerance",
        ));
    }
    Ok(())
}

/// The body as JSON; a lone surrogate in one string is read as U+FFFD (`storable`), so
/// that it does not make a whole batch unreadable.
pub fn json(body: &[u8]) -> Result<Value, Rejection> {
    crate::storable::parse_json(body)
        .map_err(|e| Rejection::Malformed(format!("invalid JSON: {e}")))
}

/// A body that must be one JSON object.
pub fn json_object(body: &[u8]) -> Result<Value, Rejection> {
    let value = json(body)?;
    if !value.is_object() {
        return Err(Rejection::Malformed(
            "invalid payload: expected an object".into(),
        ));
    }
    Ok(value)
}

/// A body that is one event object or an array of them.
pub fn one_or_many(value: Value) -> Result<Vec<Value>, Rejection> {
    match value {
        Value::Array(items) => Ok(items),
        v @ Value::Object(_) => Ok(vec![v]),
        _ => Err(Rejection::Malformed(
            "invalid payload: expected an object or an array".into(),
        )),
    }
}

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A recipient as the store wants it, or None for an empty or implausible one (that event
/// is skipped: there is nobody to attribute it to).
pub fn recipient(s: Option<&str>) -> Option<String> {
    let s = s?.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    bounce_classify::address::well_formed(s).then(|| s.to_lowercase())
}

/// A time in any of the shapes providers use: RFC 3339 text, Unix seconds (number or
/// text, possibly fractional).
pub fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    match v? {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| unix(s.trim().parse().ok()?)),
        Value::Number(n) => unix(n.as_f64()?),
        _ => None,
    }
}

fn unix(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    let whole = secs.trunc() as i64;
    let nanos = ((secs - secs.trunc()) * 1e9) as u32;
    Utc.timestamp_opt(whole, nanos).single()
}

/// listmonk's ids in a header list, whatever shape the provider gives it: an object of
/// name -> value, or an array of `{name, value}` objects or `[name, value]` pairs. Header
/// names compare case-insensitively.
pub fn header_value<'a>(headers: Option<&'a Value>, name: &str) -> Option<&'a str> {
    match headers? {
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| first_str(v)),
        Value::Array(items) => items.iter().find_map(|item| match item {
            Value::Object(o) => {
                let n = o.get("name").or_else(|| o.get("key"))?.as_str()?;
                n.eq_ignore_ascii_case(name)
                    .then(|| o.get("value").and_then(first_str))
                    .flatten()
            }
            Value::Array(pair) if pair.len() == 2 => pair[0]
                .as_str()
                .filter(|n| n.eq_ignore_ascii_case(name))
                .and_then(|_| pair[1].as_str()),
            _ => None,
        }),
        _ => None,
    }
}

fn first_str(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Array(a) => a.first().and_then(Value::as_str),
        _ => None,
    }
}

/// Keys under which senders pass listmonk's campaign UUID as metadata (custom args, user
/// variables, tags), besides the header name itself.
const CAMPAIGN_KEYS: &[&str] = &[
    CAMPAIGN_HEADER,
    "listmonk_campaign",
    "listmonk-campaign",
    "campaign_uuid",
];
const SUBSCRIBER_KEYS: &[&str] = &[
    SUBSCRIBER_HEADER,
    "listmonk_subscriber",
    "listmonk-subscriber",
    "subscriber_uuid",
];

fn uuid_under(container: Option<&Value>, keys: &[&str]) -> Option<Uuid> {
    keys.iter()
        .find_map(|k| header_value(container, k))
        .and_then(|s| Uuid::parse_str(s.trim().trim_matches(['<', '>'])).ok())
}

/// The campaign UUID in headers or metadata.
pub fn campaign_in(container: Option<&Value>) -> Option<Uuid> {
    uuid_under(container, CAMPAIGN_KEYS)
}

/// The subscriber UUID in headers or metadata.
pub fn subscriber_in(container: Option<&Value>) -> Option<Uuid> {
    uuid_under(container, SUBSCRIBER_KEYS)
}

/// A free-text metadata field (Mailjet's Payload, Brevo's X-Mailin-custom) that may hold a
/// bare campaign UUID or a JSON object with the usual keys.
pub fn campaign_in_text(text: Option<&str>) -> Option<Uuid> {
    let text = text?.trim();
    if let Ok(u) = Uuid::parse_str(text) {
        return Some(u);
    }
    let parsed: Value = serde_json::from_str(text).ok()?;
    campaign_in(Some(&parsed))
}

/// Builds an event with the provider as `source`. `meta` is the provider's own event (or
/// what the adapter made of it): it is kept as the bounce's evidence as it is now, before
/// the adapter adds its findings to it.
pub fn event(
    source: &str,
    email: String,
    bounce_type: BounceType,
    meta: Value,
    event_id: String,
) -> BounceEvent {
    BounceEvent {
        evidence: Some(Evidence::json(&meta)),
        request_digest: None,
        email: Some(email),
        subscriber_uuid: None,
        campaign_uuid: None,
        bounce_type,
        source: source.to_owned(),
        meta: if meta.is_object() {
            meta
        } else {
            serde_json::json!({ "payload": meta })
        },
        created_at: None,
        event_id,
        reason: None,
    }
}

/// Longest diagnostic kept in a bounce's `meta`: servers sometimes quote whole transcripts.
pub const MAX_DIAGNOSTIC: usize = 1000;

/// A diagnostic as `meta` keeps it: trimmed, at most [`MAX_DIAGNOSTIC`] characters.
pub fn clip(text: &str) -> String {
    text.trim().chars().take(MAX_DIAGNOSTIC).collect()
}

/// The reason a provider's table gives `value`. Case-insensitive: providers' own examples
/// and payloads do not always agree on the case of their codes.
pub fn lookup(table: &[(&str, Reason)], value: Option<&str>) -> Option<Reason> {
    let value = value?.trim();
    table
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(value))
        .map(|(_, r)| *r)
}

/// Why one bounce happened, and the evidence `meta` shows for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    pub reason: Reason,
    /// The RFC 3463 status, as given or as found in the diagnostic.
    pub status: Option<String>,
    /// The remote server's reply, as the provider passed it on.
    pub diagnostic: Option<String>,
    /// The server that refused the message, where the provider names it.
    pub remote_mta: Option<String>,
}

impl Why {
    /// A reason that the provider's code alone decides (a complaint, the provider's own
    /// refusal to send): no remote server spoke.
    pub fn of(reason: Reason) -> Why {
        Why {
            reason,
            status: None,
            diagnostic: None,
            remote_mta: None,
        }
    }

    /// The reason from the remote server's reply (the classifier's `decide_reply`, the same
    /// that reads bounce mail) when it names a cause, else the provider's `category`.
    ///
    /// The reply first: it is what the receiving server said, and names causes that
    /// providers' categories lump together (a DMARC failure, a block list and a full
    /// mailbox are all a "hard bounce" or "General" to some). The category decides when the
    /// reply names nothing (`onhold`/`undefined`), which is also the case when there is no
    /// reply at all. Providers whose category is more reliable than the text for some
    /// values (their own suppressions) use [`Why::of`] for those.
    pub fn from_reply(
        category: Option<Reason>,
        status: Option<&str>,
        reply: Option<u16>,
        diagnostic: Option<&str>,
    ) -> Why {
        let status = status.map(str::trim).filter(|s| !s.is_empty());
        let diagnostic = diagnostic.map(str::trim).filter(|s| !s.is_empty());
        let (from_text, found) =
            bounce_classify::reason::decide_reply(status, reply, diagnostic.unwrap_or(""));
        let reason = match (from_text, category) {
            (Reason::OnHold | Reason::Undefined, Some(c)) => c,
            (r, _) => r,
        };
        Why {
            reason,
            status: found.or_else(|| status.map(str::to_owned)),
            diagnostic: diagnostic.map(clip),
            remote_mta: None,
        }
    }

    /// The server the provider tried to deliver to, for `meta.remote_mta`.
    pub fn remote_mta(mut self, host: Option<&str>) -> Why {
        self.remote_mta = host.map(clip).filter(|h| !h.is_empty());
        self
    }

    /// Sets the event's reason and adds `reason` (the name), `status` and `diagnostic` to its
    /// `meta`, the keys the export's columns and the API's `reason` filter read.
    ///
    /// `meta.reason` is always the name, so that one key means one thing whatever the
    /// source. Where the provider's own event has a `reason` of its own (SendGrid, Brevo and
    /// SparkPost put the reply there, Mailgun a word such as `bounce`), that value moves to
    /// `provider_reason`, unless it is the reply `diagnostic` already holds. The event as the
    /// provider sent it is kept whole as the bounce's evidence. A `status` the payload
    /// already has keeps the provider's value.
    pub fn apply(self, e: &mut BounceEvent) {
        e.reason = Some(self.reason);
        let Some(meta) = e.meta.as_object_mut() else {
            return;
        };
        let name = Value::from(self.reason.as_str());
        if let Some(own) = meta.insert("reason".into(), name.clone()) {
            let repeats_diagnostic = matches!(
                (own.as_str(), self.diagnostic.as_deref()),
                (Some(own), Some(d)) if clip(own) == d
            );
            if own != name && !repeats_diagnostic {
                meta.insert("provider_reason".into(), own);
            }
        }
        for (key, value) in [
            ("status", self.status),
            ("diagnostic", self.diagnostic),
            ("remote_mta", self.remote_mta),
        ] {
            if let Some(v) = value {
                meta.entry(key).or_insert_with(|| v.into());
            }
        }
    }
}

/// An id for providers that send none: the hash of the event's JSON, which a retry repeats
/// byte for byte (serde_json's map keeps keys sorted, so the text is canonical).
pub fn content_id(item: &Value) -> String {
    format!("sha256:{}", sha256_hex(item.to_string().as_bytes()))
}

/// Credentials a provider that signs nothing puts in its webhook URL: Basic `user:password`
/// or a token (`?token=` or `Authorization: Bearer`).
pub struct UrlCredentials {
    basic: Option<Credentials>,
    token: Option<String>,
}

impl UrlCredentials {
    pub fn load(
        provider: &str,
        spec: &bounceops_api::TokenAuthProvider,
        secrets: &SecretsDir,
    ) -> Result<UrlCredentials, ConfigIssue> {
        let field = |name: &str| format!("{provider}.{name}");
        // `validate` requires one of the two; with neither, `verify` would admit no one.
        let basic =
            match &spec.credentials_secret_ref {
                Some(r) => {
                    let text = required_secret(secrets, &field("credentialsSecretRef"), Some(r))?;
                    Some(Credentials::parse(&text).map_err(|m| {
                        (format!("spec.providers.{provider}.credentialsSecretRef"), m)
                    })?)
                }
                None => None,
            };
        let token = match &spec.token_secret_ref {
            Some(r) => Some(required_secret(secrets, &field("tokenSecretRef"), Some(r))?),
            None => None,
        };
        Ok(UrlCredentials { basic, token })
    }

    pub fn verify(&self, req: &Head<'_>) -> Result<(), Rejection> {
        let authorization = req.header("authorization");
        if let Some(token) = &self.token {
            let given = req.query_param("token").or_else(|| {
                authorization
                    .and_then(|h| h.strip_prefix("Bearer ").or(h.strip_prefix("bearer ")))
                    .map(|t| t.trim().to_owned())
            });
            if let Some(given) = given {
                return if ct_eq(token.as_bytes(), given.as_bytes()) {
                    Ok(())
                } else {
                    Err(Rejection::Unauthorized("token does not match"))
                };
            }
        }
        if let Some(basic) = &self.basic {
            return basic.verify_header(authorization).map_err(|e| match e {
                AuthError::Missing => Rejection::Unauthorized("missing Basic credentials"),
                AuthError::Wrong => Rejection::Unauthorized("Basic credentials do not match"),
            });
        }
        Err(Rejection::Unauthorized("missing token"))
    }
}

/// A provider without signatures (Brevo, Mailjet, SparkPost): credentials in the webhook
/// URL or Basic auth, and a JSON body of one item or an array of them. Only the mapping
/// from an item to an event differs, so each of those providers is this type with its own
/// `event_of`.
pub struct TokenAuthWebhook {
    name: &'static str,
    credentials: UrlCredentials,
    event_of: fn(serde_json::Value) -> Option<BounceEvent>,
}

impl TokenAuthWebhook {
    pub fn load(
        name: &'static str,
        spec: &bounceops_api::TokenAuthProvider,
        secrets: &crate::secrets::SecretsDir,
        event_of: fn(serde_json::Value) -> Option<BounceEvent>,
    ) -> Result<Option<TokenAuthWebhook>, super::ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        Ok(Some(TokenAuthWebhook {
            name,
            credentials: UrlCredentials::load(name, spec, secrets)?,
            event_of,
        }))
    }
}

impl super::Provider for TokenAuthWebhook {
    type Verified = ();

    fn name(&self) -> &'static str {
        self.name
    }

    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        self.credentials.verify(head)?;
        Ok(Admitted::Authenticated)
    }

    /// All is checked by `admit`.
    fn verify<'a>(
        &'a self,
        _: &'a super::Incoming,
        _: &'a super::Context,
    ) -> futures::future::BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn parse(&self, req: &super::Incoming, _: ()) -> Result<super::Received, Rejection> {
        let items = one_or_many(json(&req.body)?)?;
        Ok(super::Received::Events(
            items.into_iter().filter_map(self.event_of).collect(),
        ))
    }
}

/// What the providers' tests share.
#[cfg(test)]
pub mod testing {
    use serde_json::Value;

    /// A reply that names no cause (`onhold` to the classifier), so that a provider's
    /// table decides: the rows of each table are tested with it.
    pub const GENERIC_REPLY: &str = "550 5.0.0 Message rejected";

    // The integration tests' own copy would be a twin; `#[path]` cannot reach it from here
    // (the module's directory does not exist), `include!` can.
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/common/fixture_text.rs"
    ));

    /// A fixture of the webhook tests (`tests/fixtures/providers`), placeholders replaced.
    pub fn fixture(name: &str, vars: &[(&str, &str)]) -> Value {
        let text = fixture_text(name, vars);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_generic_reply_names_no_cause() {
        let why = Why::from_reply(None, None, None, Some(testing::GENERIC_REPLY));
        assert_eq!(why.reason, Reason::OnHold);
        assert_eq!(why.status.as_deref(), Some("5.0.0"));
        let why = Why::from_reply(
            Some(Reason::Blocked),
            None,
            None,
            Some(testing::GENERIC_REPLY),
        );
        assert_eq!(why.reason, Reason::Blocked);
    }

    #[test]
    fn the_reply_outranks_the_category_and_nothing_at_all_is_undefined() {
        let text = "smtp; 550 5.7.1 rejected due to example.org's DMARC policy";
        let why = Why::from_reply(Some(Reason::UserUnknown), None, None, Some(text));
        assert_eq!(why.reason, Reason::AuthFailure);
        assert_eq!(why.status.as_deref(), Some("5.7.1"));
        assert_eq!(why.diagnostic.as_deref(), Some(text));
        // A status alone is evidence; the reply code given outranks none found in the text.
        assert_eq!(
            Why::from_reply(None, Some("5.2.2"), None, None).reason,
            Reason::MailboxFull
        );
        assert_eq!(
            Why::from_reply(None, None, Some(552), Some("no room")).reason,
            Reason::MailboxFull
        );
        assert_eq!(
            Why::from_reply(None, None, None, Some("  ")).reason,
            Reason::Undefined
        );
        assert_eq!(Why::from_reply(None, None, None, None).status, None);
    }

    #[test]
    fn diagnostics_are_trimmed_to_a_thousand_characters() {
        let long = format!("  550 5.1.1 {}  ", "é".repeat(3000));
        let why = Why::from_reply(None, None, None, Some(&long));
        let kept = why.diagnostic.unwrap();
        assert_eq!(kept.chars().count(), MAX_DIAGNOSTIC);
        assert!(kept.starts_with("550 5.1.1 é"));
        assert_eq!(clip(" short \n"), "short");
    }

    #[test]
    fn meta_reason_is_the_name_and_the_providers_own_is_kept() {
        let meta = json!({"reason": "550 5.1.1 user unknown", "status": "5.1.1", "x": 1});
        let mut e = event("p", "a@x.test".into(), BounceType::Hard, meta, "1".into());
        Why {
            reason: Reason::UserUnknown,
            status: Some("5.1.1".into()),
            diagnostic: Some("550 5.1.1 user unknown".into()),
            remote_mta: None,
        }
        .apply(&mut e);
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(
            e.meta,
            json!({"reason": "userunknown", "status": "5.1.1", "x": 1,
                   "diagnostic": "550 5.1.1 user unknown"})
        );
        // A provider's own reason that is not the reply (Mailgun's word) is kept beside it.
        let meta = json!({"reason": "bounce"});
        let mut e = event("p", "a@x.test".into(), BounceType::Hard, meta, "3".into());
        Why::from_reply(None, None, Some(550), Some("No such mailbox")).apply(&mut e);
        assert_eq!(e.meta["reason"], "userunknown");
        assert_eq!(e.meta["provider_reason"], "bounce");
        assert_eq!(e.meta["diagnostic"], "No such mailbox");
        let mut e = event(
            "p",
            "a@x.test".into(),
            BounceType::Complaint,
            json!({}),
            "2".into(),
        );
        Why::of(Reason::Feedback).apply(&mut e);
        assert_eq!(e.meta, json!({"reason": "feedback"}));
    }

    #[test]
    fn headers_in_every_shape() {
        let id = "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f";
        for headers in [
            json!({"x-listmonk-campaign": id}),
            json!([{"name": "X-Listmonk-Campaign", "value": id}]),
            json!([["X-LISTMONK-CAMPAIGN", id]]),
            json!({"campaign_uuid": id}),
            json!({"X-Listmonk-Campaign": [id]}),
        ] {
            assert_eq!(
                campaign_in(Some(&headers))
                    .map(|u| u.to_string())
                    .as_deref(),
                Some(id),
                "{headers}"
            );
        }
        assert_eq!(
            campaign_in(Some(&json!({"X-Listmonk-Campaign": "x"}))),
            None
        );
        assert_eq!(campaign_in_text(Some(id)).unwrap().to_string(), id);
        assert!(campaign_in_text(Some(&format!(r#"{{"campaign_uuid":"{id}"}}"#))).is_some());
    }

    #[test]
    fn times_and_recipients() {
        assert_eq!(
            time(Some(&json!(1_700_000_000))).unwrap().timestamp(),
            1_700_000_000
        );
        assert_eq!(
            time(Some(&json!("1700000000.5"))).unwrap().timestamp(),
            1_700_000_000
        );
        assert!(time(Some(&json!("2026-01-02T03:04:05.123Z"))).is_some());
        assert_eq!(
            recipient(Some(" <Bob@Example.COM> ")).as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(recipient(Some("nobody")), None);
    }

    #[test]
    fn timestamp_tolerance_both_ways() {
        let now = Utc.timestamp_opt(1_000_000, 0).unwrap();
        assert!(check_timestamp("1000000", now, 300).is_ok());
        assert!(check_timestamp("999700", now, 300).is_ok());
        assert!(check_timestamp("999699", now, 300).is_err());
        assert!(check_timestamp("1000301", now, 300).is_err());
        assert!(check_timestamp("soon", now, 300).is_err());
        // Any i64 a sender puts there is refused, never an overflow.
        for extreme in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert!(check_timestamp(&extreme.to_string(), now, u32::MAX).is_err());
        }
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
        assert!(check_rfc3339_timestamp("2026-12-04T11:00:00.123Z", now, 3900).is_ok());
        for refused in [
            "2001-01-01T00:00:00Z",
            "2099-01-01T00:00:00Z",
            "not a time",
            "",
        ] {
            assert!(
                check_rfc3339_timestamp(refused, now, 3900).is_err(),
                "{refused}"
            );
        }
    }
}
