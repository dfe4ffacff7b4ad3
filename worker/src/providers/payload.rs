//! Reading a provider's JSON: the body as JSON (one object, or one item or an array of
//! them), string fields, recipients, times in the shapes providers use, and ids for
//! providers that send none.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Rejection;

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

/// An id for providers that send none: the hash of the event's JSON, which a retry repeats
/// byte for byte (serde_json's map keeps keys sorted, so the text is canonical).
pub fn content_id(item: &Value) -> String {
    bytes_id(item.to_string().as_bytes())
}

/// An id for a body that is one event and carries no id: the hash of its bytes, which a
/// retry repeats.
pub fn bytes_id(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
