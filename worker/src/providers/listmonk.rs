//! listmonk's campaign and subscriber ids, found in the headers or metadata a provider
//! passes back, whatever shape it gives them.

use serde_json::Value;
use uuid::Uuid;

pub const CAMPAIGN_HEADER: &str = "X-Listmonk-Campaign";
pub const SUBSCRIBER_HEADER: &str = "X-Listmonk-Subscriber";

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
