//! Lettermint's webhooks: `X-Lettermint-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of
//! `<t>.<body>`, accepted within ±300 seconds.

use bounceops_api::LettermintProvider;
use serde_json::Value;

use super::bounce::{complete, event};
use super::hmac::{Encoding, HmacScheme, HmacSigned, Signatures};
use super::listmonk::{campaign_in, subscriber_in};
use super::payload::{content_id, json_object, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use super::secret::from_secret;
use super::webhook::Webhook;
use super::{Incoming, Loaded, Received, Rejection};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "lettermint";

/// `event` (Lettermint's webhook events, https://docs.lettermint.co). Lettermint has no
/// finer category than hard or soft: the server's reply in `data.response` (its
/// `content`, `enhanced_status_code` and `status_code`) decides for both.
pub const EVENTS: &[(&str, Reason)] = &[
    ("message.hard_bounced", Reason::OnHold),
    ("message.soft_bounced", Reason::OnHold),
    ("message.spam_complaint", Reason::Feedback),
];

/// `t` and the `v1` signatures in one header, the HMAC of `<t>.<body>`.
const SIGNATURE: HmacScheme = HmacScheme::new(
    "x-lettermint-signature",
    "missing X-Lettermint-Signature header",
    Signatures::TimestampParams,
    Encoding::Hex,
)
.tolerance(300);

pub fn load(spec: &LettermintProvider, secrets: &SecretsDir) -> Loaded<Webhook<HmacSigned>> {
    let r = spec.signing_key_secret_ref.as_ref();
    from_secret(
        spec.enabled,
        secrets,
        "lettermint.signingKeySecretRef",
        r,
        |key| Ok(SIGNATURE.webhook(NAME, key.into_bytes(), parse)),
    )
}

fn parse(req: &Incoming) -> Result<Received, Rejection> {
    let body = json_object(&req.body)?;
    Ok(Received::Events(event_of(body).into_iter().collect()))
}

pub fn event_of(body: Value) -> Option<BounceEvent> {
    let t = match str_at(&body, "/event")? {
        "message.hard_bounced" => BounceType::Hard,
        "message.soft_bounced" => BounceType::Soft,
        "message.spam_complaint" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&body, "/data/recipient"))?;
    let id = str_at(&body, "/id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&body));
    let headers = body.pointer("/data/headers");
    let metadata = body.pointer("/data/metadata");
    let campaign = campaign_in(headers).or_else(|| campaign_in(metadata));
    let subscriber = subscriber_in(headers).or_else(|| subscriber_in(metadata));
    let created_at = time(body.get("timestamp"));
    let category = lookup(EVENTS, str_at(&body, "/event"));
    let why = if t == BounceType::Complaint {
        Why::of(Reason::Feedback)
    } else {
        let code = body
            .pointer("/data/response/status_code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok());
        Why::from_reply(
            category,
            str_at(&body, "/data/response/enhanced_status_code"),
            code,
            str_at(&body, "/data/response/content"),
        )
    };
    let e = event(NAME, email, t, body, id);
    Some(complete(e, (campaign, subscriber), created_at, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture};
    use serde_json::json;

    #[test]
    fn events_row_by_row() {
        let rows = [
            ("message.hard_bounced", Reason::OnHold),
            ("message.soft_bounced", Reason::OnHold),
            ("message.spam_complaint", Reason::Feedback),
        ];
        assert_eq!(rows.len(), EVENTS.len(), "a row is untested");
        for (kind, want) in rows {
            let body = json!({"id": "1", "event": kind, "timestamp": "2026-01-02T03:04:05.000Z",
                "data": {"message_id": "msg_1", "recipient": "a@example.com",
                    "response": {"status_code": 550, "enhanced_status_code": "5.0.0",
                        "content": GENERIC_REPLY}}});
            let e = event_of(body).unwrap();
            assert_eq!(e.reason, Some(want), "{kind}");
            assert_eq!(e.meta["reason"], want.as_str(), "{kind}");
        }
    }

    #[test]
    fn a_full_event_carries_reason_status_and_diagnostic() {
        let vars = [
            ("ID", "ev"),
            ("EVENT", "message.soft_bounced"),
            ("EMAIL1", "a@example.net"),
            ("CAMPAIGN", "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"),
        ];
        let e = event_of(fixture("lettermint-bounce.json", &vars)).unwrap();
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(e.meta["reason"], "userunknown");
        assert_eq!(e.meta["status"], "5.1.1");
        assert_eq!(e.meta["diagnostic"], "550 5.1.1 user unknown");
        // The status and code fields alone are evidence when the text is empty.
        let body = json!({"id": "2", "event": "message.soft_bounced",
            "data": {"recipient": "a@example.com",
                "response": {"status_code": 452, "enhanced_status_code": "4.2.2", "content": ""}}});
        assert_eq!(event_of(body).unwrap().reason, Some(Reason::MailboxFull));
    }
}
