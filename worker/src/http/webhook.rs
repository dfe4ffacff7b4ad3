//! listmonk's generic bounce webhook, `POST /webhooks/bounce`.
//!
//! The body is `{email | subscriber_uuid, campaign_uuid?, type, source, meta?, created_at?}`;
//! the answer is `{"data": true}` once the bounce is committed, 400 with a message for bad
//! input, 503 when the database cannot take it (the sender should retry).
//!
//! A sender that retries should send an `Idempotency-Key` header (the IETF httpapi draft's
//! name): a bounce is recorded once per key, so a retry after a lost answer (a timeout, a
//! worker killed between its commit and its reply) is acknowledged without being counted
//! again. The key is bound to the SHA-256 of the body it first came with: the same key
//! with another body is answered 422, as the draft says, and nothing is recorded. Without
//! the header every request is a new bounce, as in listmonk.
//!
//! A bounce the database refuses to store (a character its encoding cannot hold) is
//! answered 422 with the database's reason; it is kept in `bounceops.dead_letters`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::ApiError;
use super::{AppState, Authenticated};
use crate::event::{BounceEvent, BounceType, Outcome, received_id};
use crate::evidence::Evidence;

/// Longest `Idempotency-Key` taken: a UUID or a hash fits many times over.
const MAX_KEY_BYTES: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/bounce", post(receive))
}

/// The request as listmonk defines it. Strings are checked by hand afterwards so that each
/// bad field gets a message naming it. `meta` is read from the JSON object itself: serde
/// would make `"meta": null` and no `meta` one `None`, and listmonk stores them apart.
#[derive(Deserialize)]
struct GenericBounce {
    #[serde(default)]
    email: String,
    #[serde(default)]
    subscriber_uuid: String,
    #[serde(default)]
    campaign_uuid: String,
    #[serde(rename = "type", default)]
    bounce_type: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    created_at: Option<String>,
}

async fn receive(
    State(app): State<AppState>,
    _: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !app.generic_webhook {
        return Err(ApiError::NotFound(
            "the generic webhook is not enabled".into(),
        ));
    }
    let body = body?;
    let mut event = parse(&body)?;
    let key = idempotency_key(&headers)?;
    if let Some(key) = key {
        event.event_id = format!("idempotency-key:{key}");
        event.request_digest = Some(Sha256::digest(&body).into());
    }
    // The body is the sender's own event: kept as it came, byte for byte.
    event.evidence = Some(Evidence::json_bytes(body));
    let outcomes = app.ingest.record(vec![event]).await?;
    match outcomes.into_iter().next() {
        Some(Outcome::KeyReused) => Err(ApiError::Unprocessable(format!(
            "Idempotency-Key {:?} was already used with a different request body; \
             a new bounce needs a new key",
            key.unwrap_or_default()
        ))),
        Some(Outcome::DeadLettered { id, reason }) => Err(ApiError::Unprocessable(format!(
            "the bounce cannot be stored: the database refuses it ({reason}); \
             kept as dead letter {id}"
        ))),
        _ => Ok(Json(serde_json::json!({ "data": true }))),
    }
}

/// Validates a request body into an event, as listmonk's `validateBounceFields` does.
pub fn parse(body: &[u8]) -> Result<BounceEvent, ApiError> {
    let mut value: serde_json::Value = crate::storable::parse_json(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    // serde would also read a struct from a JSON array; listmonk wants an object.
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "invalid JSON: expected an object".into(),
        ));
    }
    // listmonk (`BounceWebhook`, cmd/bounce.go) unmarshals meta into a json.RawMessage and
    // stores `{}` only when it is empty, that is absent: `"meta": null` is stored as the JSON
    // null it is.
    let meta = value.as_object_mut().and_then(|o| o.remove("meta"));
    let b: GenericBounce = serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))?;
    let bad = |field: &str| ApiError::BadRequest(format!("invalid {field}"));

    let email = b.email.trim();
    let subscriber_uuid = b.subscriber_uuid.trim();
    if email.is_empty() && subscriber_uuid.is_empty() {
        return Err(ApiError::BadRequest(
            "email or subscriber_uuid is required".into(),
        ));
    }
    let subscriber_uuid = optional_uuid(subscriber_uuid).map_err(|_| bad("subscriber_uuid"))?;
    let campaign_uuid = optional_uuid(b.campaign_uuid.trim()).map_err(|_| bad("campaign_uuid"))?;
    let email = if email.is_empty() {
        None
    } else if bounce_classify::address::well_formed(email) {
        Some(email.to_lowercase())
    } else {
        return Err(bad("email"));
    };
    let bounce_type = BounceType::parse(&b.bounce_type).ok_or_else(|| {
        ApiError::BadRequest("invalid type: must be soft, hard or complaint".into())
    })?;
    let meta = match meta {
        None => serde_json::json!({}),
        Some(m @ (serde_json::Value::Null | serde_json::Value::Object(_))) => m,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid meta: must be an object (or null)".into(),
            ));
        }
    };
    let created_at = match b.created_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(t)
                .map_err(|_| ApiError::BadRequest("invalid created_at: not RFC 3339".into()))?
                .with_timezone(&Utc),
        ),
    };
    if b.source.len() > 200 {
        return Err(ApiError::BadRequest(
            "invalid source: longer than 200 bytes".into(),
        ));
    }
    // A sender that knows why (its own MTA's classifier) may say so in `meta.reason`, in the
    // vocabulary of docs/reasons.md; rules by reason then apply as to any other input. Any
    // other value is the sender's own and stays in meta untouched.
    let reason = meta
        .get("reason")
        .and_then(serde_json::Value::as_str)
        .and_then(bounce_classify::Reason::from_name);
    Ok(BounceEvent {
        email,
        subscriber_uuid,
        campaign_uuid,
        bounce_type,
        source: b.source,
        meta,
        created_at,
        event_id: received_id(),
        reason,
        evidence: None,
        request_digest: None,
    })
}

/// The sender's `Idempotency-Key`, if any: 1 to 200 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::BadRequest(format!(
            "invalid Idempotency-Key: 1 to {MAX_KEY_BYTES} visible ASCII characters"
        ))
    };
    let key = value.to_str().map_err(|_| bad())?.trim();
    if key.is_empty() || key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key))
}

fn optional_uuid(s: &str) -> Result<Option<Uuid>, uuid::Error> {
    if s.is_empty() {
        Ok(None)
    } else {
        Uuid::parse_str(s).map(Some)
    }
}

/// A deliberately small check, written by hand: the address only has to be one that a
/// subscriber row could hold. Full RFC 5322 parsing would accept display names and
/// comments that no subscriber e-mail contains.
#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn full_body() {
        let e = parse(br#"{"email":"Alice@Example.COM","campaign_uuid":"2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f","type":"hard","source":"api","meta":{"k":1},"created_at":"2026-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(e.email.as_deref(), Some("alice@example.com"));
        assert_eq!(e.bounce_type, BounceType::Hard);
        assert_eq!(e.meta, serde_json::json!({"k": 1}));
        assert_eq!(
            e.created_at.unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
        assert!(e.campaign_uuid.is_some());
    }

    #[test]
    fn a_reason_name_in_meta_is_the_events_reason() {
        let e = parse(br#"{"email":"a@b.c","type":"hard","meta":{"reason":"blocked"}}"#).unwrap();
        assert_eq!(e.reason, Some(bounce_classify::Reason::Blocked));
        let e = parse(br#"{"email":"a@b.c","type":"hard","meta":{"reason":"IP listed"}}"#).unwrap();
        assert_eq!(e.reason, None);
        assert_eq!(e.meta["reason"], "IP listed");
        assert_eq!(
            parse(br#"{"email":"a@b.c","type":"hard"}"#).unwrap().reason,
            None
        );
    }

    #[test]
    fn rejects_each_bad_field_by_name() {
        assert!(err("{").contains("invalid JSON"));
        assert!(err("[]").contains("invalid JSON"));
        assert!(err(r#"{"type":"hard"}"#).contains("email or subscriber_uuid"));
        assert!(err(r#"{"email":"nope","type":"hard"}"#).contains("invalid email"));
        assert!(err(r#"{"subscriber_uuid":"x","type":"hard"}"#).contains("subscriber_uuid"));
        assert!(
            err(r#"{"email":"a@b.c","campaign_uuid":"1","type":"hard"}"#).contains("campaign_uuid")
        );
        assert!(err(r#"{"email":"a@b.c","type":"bouncy"}"#).contains("invalid type"));
        assert!(err(r#"{"email":"a@b.c","type":5}"#).contains("invalid JSON"));
        assert!(err(r#"{"email":"a@b.c","type":"soft","meta":"x"}"#).contains("meta"));
        assert!(
            err(r#"{"email":"a@b.c","type":"soft","created_at":"yesterday"}"#)
                .contains("created_at")
        );
    }

    #[test]
    fn empty_optional_strings_are_absent() {
        let e =
            parse(br#"{"email":"a@b.c","subscriber_uuid":"","campaign_uuid":"","type":"soft"}"#)
                .unwrap();
        assert_eq!(e.subscriber_uuid, None);
        assert_eq!(e.campaign_uuid, None);
        assert_eq!(e.meta, serde_json::json!({}));
    }

    /// listmonk's `BounceWebhook` (cmd/bounce.go) replaces only an empty `meta` (absent) by
    /// `{}`; `null` is kept.
    #[test]
    fn meta_null_stays_null() {
        let e = parse(br#"{"email":"a@b.c","type":"soft","meta":null}"#).unwrap();
        assert_eq!(e.meta, serde_json::Value::Null);
        assert_eq!(e.reason, None);
    }

    #[test]
    fn idempotency_keys() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("idempotency-key", v.parse().unwrap());
            idempotency_key(&h).map(|k| k.map(str::to_owned))
        };
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(with(" 8e3b-1 ").unwrap().as_deref(), Some("8e3b-1"));
        for bad in ["", "a b", &"k".repeat(MAX_KEY_BYTES + 1)] {
            assert!(with(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn events_without_a_key_get_their_own_identity() {
        let body = br#"{"email":"a@b.c","type":"soft"}"#;
        assert_ne!(parse(body).unwrap().event_id, parse(body).unwrap().event_id);
    }

    /// Any bytes at all get an answer, never a panic: random bytes, and valid bodies with
    /// bytes flipped, truncated or repeated (a deterministic generator, so a failure
    /// reproduces).
    #[test]
    fn never_panics_on_any_input() {
        let valid = br#"{"email":"a@b.c","subscriber_uuid":"2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f","type":"hard","source":"s","meta":{"k":[1,{"x":null}]},"created_at":"2026-01-02T03:04:05Z"}"#;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut body = valid.to_vec();
            match round % 4 {
                0 => body = (0..next() % 64).map(|_| next() as u8).collect(),
                1 => {
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % body.len();
                        body[i] = next() as u8;
                    }
                }
                2 => body.truncate((next() as usize) % body.len()),
                _ => {
                    let i = (next() as usize) % body.len();
                    let piece = body[i..].to_vec();
                    body.extend_from_slice(&piece);
                }
            }
            let _ = parse(&body);
        }
    }
}
