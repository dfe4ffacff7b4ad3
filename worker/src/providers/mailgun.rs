//! Mailgun's webhooks: `{signature: {timestamp, token, signature}, event-data}` where the
//! signature is hex HMAC-SHA256(timestamp ‖ token) with the webhook signing key. The
//! signature does not cover the body, so each token is single-use (`replay`) and stale
//! timestamps are refused.
//!
//! The signature lives inside the body, so the body must be read to find it; but nothing is
//! built from it until it verifies: the first pass reads the three strings of the signature
//! block and skips everything else without allocating (`SignedBody`), and `event-data` is
//! parsed only once the signature, the time and the token are good.

use std::borrow::Cow;

use bounceops_api::MailgunProvider;
use serde::Deserialize;
use serde_json::Value;

use super::bounce::{complete, event};
use super::hmac::{hex_matches, hmac_sha256};
use super::listmonk::{campaign_in, subscriber_in};
use super::payload::{content_id, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use super::replay::Nonces;
use super::secret::from_secret;
use super::tolerance::check_timestamp;
use super::{Checking, Context, Incoming, Loaded, Provider, Received, Rejection};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;
use crate::storable::parse_json;

pub const NAME: &str = "mailgun";

/// `reason` of `failed` events, Mailgun's own word for the failure (Events,
/// https://documentation.mailgun.com/docs/mailgun/user-manual/events/). For `bounce` and
/// `generic` the server's reply in `delivery-status` decides; other values are `onhold`.
pub const REASONS: &[(&str, Reason)] = &[
    ("bounce", Reason::OnHold),
    ("generic", Reason::OnHold),
    // Mailgun's IPs are blocked by the recipient's provider.
    ("espblock", Reason::Blocked),
    // Retried until the message was too old to send.
    ("old", Reason::Expired),
    ("suppress-bounce", Reason::OnHold),
    ("suppress-complaint", Reason::Feedback),
    ("suppress-unsubscribe", Reason::OnHold),
];

pub struct Mailgun {
    key: Vec<u8>,
    tolerance_seconds: u32,
    nonces: Nonces,
}

pub fn load(spec: &MailgunProvider, secrets: &SecretsDir) -> Loaded<Mailgun> {
    let r = spec.signing_key_secret_ref.as_ref();
    from_secret(
        spec.enabled,
        secrets,
        "mailgun.signingKeySecretRef",
        r,
        |key| {
            Ok(Mailgun {
                key: key.into_bytes(),
                tolerance_seconds: spec.tolerance_seconds.max(1),
                nonces: Nonces::default(),
            })
        },
    )
}

/// The body as the signature check reads it: the signature block's strings, borrowed from
/// the body where they hold no escape; every other member is skipped unread.
#[derive(Deserialize)]
struct SignedBody<'a> {
    #[serde(borrow, default)]
    signature: Option<SignatureBlock<'a>>,
}

#[derive(Deserialize)]
struct SignatureBlock<'a> {
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
}

/// The body as `parse` reads it, once verified: `event-data` alone.
#[derive(Deserialize)]
struct EventBody {
    #[serde(rename = "event-data", default)]
    event_data: Option<Value>,
}

impl Provider for Mailgun {
    type Verified = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn verify<'a>(&'a self, req: &'a Incoming, ctx: &'a Context) -> Checking<'a, ()> {
        Box::pin(async move {
            let body: SignedBody = serde_json::from_slice(&req.body)
                .map_err(|e| Rejection::Malformed(format!("invalid JSON: {e}")))?;
            let block = body.signature.as_ref();
            let (Some(timestamp), Some(token), Some(signature)) = (
                block.and_then(|b| b.timestamp.as_deref()),
                block.and_then(|b| b.token.as_deref()),
                block.and_then(|b| b.signature.as_deref()),
            ) else {
                return Err(Rejection::Unauthorized("missing signature block"));
            };
            let expected = hmac_sha256(&self.key, &[timestamp.as_bytes(), token.as_bytes()]);
            if !hex_matches(&expected, signature) {
                return Err(Rejection::Unauthorized("signature does not match"));
            }
            check_timestamp(timestamp, req.now, self.tolerance_seconds)?;
            let fresh = self
                .nonces
                .claim(&ctx.store, NAME, token, &req.body, self.tolerance_seconds)
                .await?;
            if !fresh {
                return Err(Rejection::Unauthorized("signature token already used"));
            }
            Ok(())
        })
    }

    fn parse(&self, req: &Incoming, _: ()) -> Result<Received, Rejection> {
        let body: EventBody = parse_json(&req.body)
            .map_err(|e| Rejection::Malformed(format!("invalid JSON: {e}")))?;
        let data = body
            .event_data
            .ok_or_else(|| Rejection::Malformed("missing event-data".into()))?;
        Ok(Received::Events(event_of(data).into_iter().collect()))
    }
}

pub fn event_of(data: Value) -> Option<BounceEvent> {
    let t = match str_at(&data, "/event")? {
        "failed" => match str_at(&data, "/severity") {
            Some("permanent") => BounceType::Hard,
            _ => BounceType::Soft,
        },
        "complained" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&data, "/recipient"))?;
    let id = str_at(&data, "/id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&data));
    let campaign = campaign_in(data.get("user-variables"))
        .or_else(|| campaign_in(data.pointer("/message/headers")));
    let subscriber = subscriber_in(data.get("user-variables"));
    let created_at = time(data.get("timestamp"));
    let why = why(&data, t);
    let e = event(NAME, email, t, data, id);
    Some(complete(e, (campaign, subscriber), created_at, why))
}

/// Why a `failed` or `complained` event happened.
fn why(data: &Value, t: BounceType) -> Why {
    if t == BounceType::Complaint {
        return Why::of(Reason::Feedback);
    }
    let reason = str_at(data, "/reason");
    let category = lookup(REASONS, reason);
    // A suppression is Mailgun's own refusal to send; its `delivery-status` is Mailgun's
    // sentence ("Not delivering to previously bounced address"), not a server's reply.
    if reason.is_some_and(|r| r.starts_with("suppress-")) {
        return Why::of(category.unwrap_or(Reason::OnHold));
    }
    let status = data.get("delivery-status");
    let text = |key: &str| {
        status
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    // `message` is the server's reply; Mailgun leaves it empty for some failures and puts
    // its own account of them in `description`.
    Why::from_reply(
        category,
        text("enhanced-code"),
        code,
        text("message").or_else(|| text("description")),
    )
    .remote_mta(text("mx-host"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture};
    use serde_json::json;

    fn failed(reason: &str, code: u16, message: &str) -> Value {
        json!({"id": "ev-1", "event": "failed", "severity": "permanent", "reason": reason,
            "timestamp": 1767323045.5, "recipient": "a@example.com",
            "delivery-status": {"attempt-no": 1, "code": code, "message": message,
                "description": ""}})
    }

    #[test]
    fn reasons_row_by_row() {
        let rows = [
            ("bounce", Reason::OnHold),
            ("generic", Reason::OnHold),
            ("espblock", Reason::Blocked),
            ("old", Reason::Expired),
            ("suppress-bounce", Reason::OnHold),
            ("suppress-complaint", Reason::Feedback),
            ("suppress-unsubscribe", Reason::OnHold),
        ];
        assert_eq!(rows.len(), REASONS.len(), "a row is untested");
        for (reason, want) in rows {
            let e = event_of(failed(reason, 550, GENERIC_REPLY)).unwrap();
            assert_eq!(e.reason, Some(want), "{reason}");
            // The name takes `reason`; Mailgun's own word moves beside it.
            assert_eq!(e.meta["reason"], want.as_str(), "{reason}");
            assert_eq!(e.meta["provider_reason"], reason);
        }
    }

    #[test]
    fn the_reply_decides_unless_mailgun_refused_to_send() {
        let blocked =
            "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org";
        let e = event_of(failed("generic", 554, blocked)).unwrap();
        assert_eq!(e.reason, Some(Reason::Blocked));
        assert_eq!(e.meta["status"], "5.7.1");
        assert_eq!(e.meta["diagnostic"], blocked);
        let e = event_of(failed("suppress-bounce", 605, "550 5.1.1 user unknown")).unwrap();
        assert_eq!(e.reason, Some(Reason::OnHold));
        let e = event_of(json!({"id": "c", "event": "complained", "recipient": "a@example.com"}));
        assert_eq!(e.unwrap().reason, Some(Reason::Feedback));
    }

    #[test]
    fn a_full_event_carries_reason_and_diagnostic() {
        let vars = [
            ("TIMESTAMP", "1767323045"),
            ("TOKEN", "t"),
            ("SIGNATURE", "s"),
            ("ID", "ev-2"),
            ("SEVERITY", "permanent"),
            ("EMAIL1", "a@example.net"),
            ("CAMPAIGN", "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"),
        ];
        let body = fixture("mailgun-failed.json", &vars);
        let e = event_of(body["event-data"].clone()).unwrap();
        // The message is empty; the description and the code 550 are what Mailgun gave.
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(e.meta["reason"], "userunknown");
        assert_eq!(e.meta["provider_reason"], "bounce");
        assert_eq!(e.meta["diagnostic"], "No such mailbox");
        assert_eq!(e.meta["remote_mta"], "mx.example.net");
        assert!(e.meta.get("status").is_none());
    }
}
