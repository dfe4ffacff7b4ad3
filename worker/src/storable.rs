//! What Postgres refuses to store, made storable before it gets there.
//!
//! Postgres refuses a NUL character in `text` (`invalid byte sequence for encoding "UTF8":
//! 0x00`) and the escape `\u0000` in `jsonb` (`unsupported Unicode escape sequence`), and a
//! B-tree refuses an index entry over about 2.7 kB. A bounce that carries either (a NUL in
//! a server's reply, in a `meta` key, in the generic webhook's `source`; a provider's event
//! id of a megabyte) would fail its whole batch, every time it is retried. Every event goes
//! through [`event`] on its way into the store (`Ingest::record`, the one door), so that no
//! writer has to think of it:
//!
//! - NUL becomes U+FFFD (the replacement character), in every string, keys included: the
//!   text stays readable, and the replacement shows that something was there.
//! - An event id that is long or holds a NUL is replaced by the SHA-256 of it, which a
//!   retry of the same event repeats, so it is still recorded once.
//!
//! Lone UTF-16 surrogates (`"\ud800"`) and numbers beyond `f64` (`1e400`) cannot reach the
//! store: Rust cannot hold them, so serde_json refuses the whole document. [`parse_json`]
//! repairs them first (to U+FFFD, and to the number's digits as a string), so that one such
//! value does not make a provider's whole batch unreadable.
//!
//! What the database still refuses after this (a character the database's encoding lacks,
//! when it is not UTF8) is found out by `ingest`, which records the rest of the batch and
//! parks that event in `bounceops.dead_letters`.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::BounceEvent;

/// Event ids up to this many bytes are stored as they are; longer ones by their digest. The
/// B-tree of `bounceops.processed_events (source, event_id)` takes about 2.7 kB per entry,
/// and no provider's id comes near this.
pub const MAX_EVENT_ID_BYTES: usize = 1000;

const REPLACEMENT: char = '\u{FFFD}';

/// Makes every text of `e` that reaches the database storable.
pub fn event(e: &mut BounceEvent) {
    if let Some(email) = &mut e.email {
        text(email);
    }
    text(&mut e.source);
    json(&mut e.meta);
    if let std::borrow::Cow::Owned(id) = key(&e.event_id) {
        e.event_id = id;
    }
}

/// An identity as a key column stores it: as it is, or by its digest when it is long or
/// holds a NUL (the same digest for the same identity, so it still finds its claim).
pub fn key(id: &str) -> std::borrow::Cow<'_, str> {
    if id.len() > MAX_EVENT_ID_BYTES || id.contains('\0') {
        format!("sha256:{}", hex::encode(Sha256::digest(id))).into()
    } else {
        id.into()
    }
}

/// Replaces NUL characters, in place; allocates only when there is one.
pub fn text(s: &mut String) {
    if s.contains('\0') {
        *s = s.replace('\0', &REPLACEMENT.to_string());
    }
}

/// [`text`] for every string of a JSON value, object keys included.
pub fn json(v: &mut Value) {
    match v {
        Value::String(s) => text(s),
        Value::Array(items) => items.iter_mut().for_each(json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                for (mut k, v) in old {
                    text(&mut k);
                    map.insert(k, v);
                }
            }
            map.values_mut().for_each(json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Text for a column that must take it whatever the database's encoding (every encoding
/// Postgres offers for a database holds ASCII): the dead letters' reason and names. Other
/// characters are written as Rust escapes (`\u{e9}`), NUL included.
pub fn ascii(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii() && b != 0) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| match c {
            '\0' => "\\u{0}".to_owned(),
            c if c.is_ascii() => c.to_string(),
            c => c.escape_unicode().to_string(),
        })
        .collect()
}

/// JSON as serde_json reads it, except for two values JSON allows and Rust cannot hold,
/// which would otherwise fail the whole document (a provider's whole batch, retried for
/// days): an escaped lone UTF-16 surrogate (`"\ud800"`) is read as U+FFFD, and a number
/// beyond `f64` (`1e400`) as the string of its digits, so the event that holds it is
/// recorded with the rest (where the number was a field read as a number, such as a time,
/// the field is treated as absent). The repairs cost a copy of the body, and only for a
/// body that needs them: a body that parses is parsed once.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    match serde_json::from_slice(body) {
        Err(e) if e.is_syntax() => {
            let surrogates = repair_surrogates(body);
            let numbers = repair_numbers(surrogates.as_deref().unwrap_or(body));
            match numbers.or(surrogates) {
                Some(repaired) => serde_json::from_slice(&repaired),
                None => Err(e),
            }
        }
        other => other,
    }
}

/// The body with every number outside `f64`'s range quoted as a string, or None when it
/// has none. Written by hand for the reason [`repair_surrogates`] is: serde_json has no
/// lenient mode (its `arbitrary_precision` feature would change every `Number` of every
/// crate in the build). One pass that tells strings from the rest by their quotes and
/// escapes; a malformed body stays malformed and is refused as before.
fn repair_numbers(body: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < body.len() {
        let b = body[i];
        if in_string {
            match b {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b != b'-' && !b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let end = body[i..]
            .iter()
            .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .map_or(body.len(), |n| i + n);
        let token = std::str::from_utf8(&body[i..end]).unwrap_or("");
        if token.parse::<f64>().is_ok_and(f64::is_infinite) {
            let o = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 16));
            o.extend_from_slice(&body[copied..i]);
            o.push(b'"');
            o.extend_from_slice(token.as_bytes());
            o.push(b'"');
            copied = end;
        }
        i = end;
    }
    if let Some(o) = &mut out {
        o.extend_from_slice(&body[copied..]);
    }
    out
}

/// The body with every escaped lone surrogate replaced by `\ufffd`, or None when it has
/// none. Written by hand: serde_json has no lenient mode, and the repair is one pass that
/// swaps six bytes for six. Escapes only occur inside strings, so a scan from backslash to
/// backslash needs no JSON parser: `\\` is skipped as a pair, so `\\ud800` (a backslash,
/// then text) is left alone.
fn repair_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    fn unit(b: &[u8], at: usize) -> Option<u16> {
        if b.get(at..at + 2)? != b"\\u" {
            return None;
        }
        let hex = std::str::from_utf8(b.get(at + 2..at + 6)?).ok()?;
        u16::from_str_radix(hex, 16).ok()
    }
    let high = |u: u16| (0xD800..0xDC00).contains(&u);
    let low = |u: u16| (0xDC00..0xE000).contains(&u);
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(body, i) {
            Some(u) if high(u) && unit(body, i + 6).is_some_and(low) => i += 12,
            Some(u) if high(u) || low(u) => {
                out.get_or_insert_with(|| body.to_vec())[i..i + 6].copy_from_slice(b"\\ufffd");
                i += 6;
            }
            Some(_) => i += 6,
            // `\\`, `\"`, `\n`, ...: the escaped character is never the start of another.
            None => i += 2,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BounceType;
    use serde_json::json;

    fn sample() -> BounceEvent {
        BounceEvent {
            email: Some("a\0b@example.com".into()),
            subscriber_uuid: None,
            campaign_uuid: None,
            bounce_type: BounceType::Hard,
            source: "api\0".into(),
            meta: json!({"k\0": ["v\0", {"x": "\0"}], "n": 1}),
            created_at: None,
            event_id: "id".into(),
            reason: None,
            evidence: None,
            request_digest: None,
        }
    }

    #[test]
    fn nul_becomes_the_replacement_character_everywhere() {
        let mut e = sample();
        event(&mut e);
        assert_eq!(e.email.as_deref(), Some("a\u{FFFD}b@example.com"));
        assert_eq!(e.source, "api\u{FFFD}");
        assert_eq!(
            e.meta,
            json!({"k\u{FFFD}": ["v\u{FFFD}", {"x": "\u{FFFD}"}], "n": 1})
        );
        assert_eq!(e.event_id, "id");
    }

    #[test]
    fn long_or_nul_ids_become_their_digest_the_same_each_time() {
        for id in ["x".repeat(MAX_EVENT_ID_BYTES + 1), "a\0b".to_owned()] {
            let mut e = sample();
            e.event_id = id.clone();
            event(&mut e);
            assert!(e.event_id.starts_with("sha256:"), "{}", e.event_id);
            let mut again = sample();
            again.event_id = id;
            event(&mut again);
            assert_eq!(e.event_id, again.event_id);
        }
        let mut e = sample();
        e.event_id = "x".repeat(MAX_EVENT_ID_BYTES);
        event(&mut e);
        assert_eq!(e.event_id.len(), MAX_EVENT_ID_BYTES);
    }

    #[test]
    fn lone_surrogates_are_read_as_replacement_characters() {
        let v: Value = parse_json(br#"{"a":"x\ud800y","b":"\udc00","c":"\ud83d\ude00"}"#).unwrap();
        assert_eq!(v, json!({"a": "x\u{FFFD}y", "b": "\u{FFFD}", "c": "😀"}));
        // A surrogate pair split by a lone one, and one at the very end of a string.
        let v: Value = parse_json(br#"["\ud800\ud83d\ude00", "\ud800"]"#).unwrap();
        assert_eq!(v, json!(["\u{FFFD}😀", "\u{FFFD}"]));
        // An escaped backslash followed by text that looks like an escape is text.
        let v: Value = parse_json(br#"["\\ud800"]"#).unwrap();
        assert_eq!(v, json!(["\\ud800"]));
        // Other syntax errors stay errors.
        assert!(parse_json::<Value>(br#"{"a":"\ud800"#).is_err());
        // Numbers beyond f64 become their digits as text; strings that look like them and
        // numbers in range are left as they are; a surrogate and a huge number together.
        let v: Value =
            parse_json(br#"{"a":1e400,"b":[-2E+999,3],"c":"1e400","d":1.5,"e":"\"1e999","f":"\ud800","g":1e309}"#)
                .unwrap();
        assert_eq!(
            v,
            json!({"a": "1e400", "b": ["-2E+999", 3], "c": "1e400", "d": 1.5, "e": "\"1e999",
                   "f": "\u{FFFD}", "g": "1e309"})
        );
        assert!(parse_json::<Value>(b"[1e400").is_err());
        assert!(parse_json::<Value>(b"{").is_err());
        assert_eq!(repair_surrogates(br#"{"a":"\u00e9\\"}"#), None);
    }

    #[test]
    fn ascii_escapes_the_rest() {
        assert_eq!(ascii("plain"), "plain");
        assert_eq!(ascii("é\0x"), "\\u{e9}\\u{0}x");
    }
}
