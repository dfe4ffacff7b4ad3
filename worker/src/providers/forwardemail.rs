//! Forward Email's bounce webhook: `X-Webhook-Signature` is the hex HMAC-SHA256 of the raw
//! body with the account's webhook key.

use bounceops_api::ForwardemailProvider;
use serde_json::Value;

use super::bounce::{complete, event};
use super::hmac::{Encoding, HmacScheme, HmacSigned, Signatures};
use super::listmonk::{campaign_in, subscriber_in};
use super::payload::{bytes_id, json_object, recipient, str_at, time};
use super::reason::{Reason, Why, lookup};
use super::secret::from_secret;
use super::webhook::Webhook;
use super::{Incoming, Loaded, Received, Rejection};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "forwardemail";

/// Categories of failures that a retry will not fix.
const HARD_CATEGORIES: &[&str] = &["block", "recipient", "virus", "spam"];

/// `bounce.category` (FAQ, "Do you support bounce webhooks?",
/// https://forwardemail.net/en/faq#do-you-support-bounce-webhooks). The categories are
/// those of ZoneMTA's bounce rules (`config/bounces.txt` in zone-eu/zone-mta), which Forward
/// Email's bounce parser uses. Forward Email passes the server's reply in `response`, which
/// is read first: the rules put several causes under one category (`capacity` is a full
/// mailbox or a full system, `config` a missing PTR or required TLS).
pub const CATEGORIES: &[(&str, Reason)] = &[
    ("recipient", Reason::UserUnknown),
    // An address that is malformed or not valid for the domain.
    ("envelope", Reason::UserUnknown),
    ("capacity", Reason::MailboxFull),
    ("block", Reason::Blocked),
    ("blacklist", Reason::Blocked),
    ("spam", Reason::SpamDetected),
    ("virus", Reason::VirusDetected),
    ("dmarc", Reason::AuthFailure),
    ("auth", Reason::SecurityError),
    ("config", Reason::SecurityError),
    ("sender", Reason::Rejected),
    ("policy", Reason::PolicyViolation),
    ("message", Reason::ContentError),
    ("rate", Reason::Speeding),
    ("network", Reason::NetworkError),
    ("protocol", Reason::SyntaxError),
    ("greylist", Reason::OnHold),
    ("other", Reason::OnHold),
];

/// The hex HMAC of the body alone: no timestamp, so no tolerance.
const SIGNATURE: HmacScheme = HmacScheme::new(
    "x-webhook-signature",
    "missing X-Webhook-Signature header",
    Signatures::Whole,
    Encoding::Hex,
);

pub fn load(spec: &ForwardemailProvider, secrets: &SecretsDir) -> Loaded<Webhook<HmacSigned>> {
    let r = spec.key_secret_ref.as_ref();
    from_secret(
        spec.enabled,
        secrets,
        "forwardemail.keySecretRef",
        r,
        |key| Ok(SIGNATURE.webhook(NAME, key.into_bytes(), parse)),
    )
}

fn parse(req: &Incoming) -> Result<Received, Rejection> {
    let body = json_object(&req.body)?;
    // Forward Email sends no event id; a retry repeats the body byte for byte.
    let id = bytes_id(&req.body);
    Ok(Received::Events(event_of(body, id).into_iter().collect()))
}

pub fn event_of(body: Value, id: String) -> Option<BounceEvent> {
    let email = recipient(body.get("recipient").and_then(Value::as_str))?;
    let category = body
        .pointer("/bounce/category")
        .and_then(Value::as_str)
        .unwrap_or("");
    let t = if HARD_CATEGORIES.contains(&category) {
        BounceType::Hard
    } else {
        BounceType::Soft
    };
    let campaign = campaign_in(body.get("headers"));
    let subscriber = subscriber_in(body.get("headers"));
    let created_at = time(body.get("bounced_at"));
    let code = body
        .get("response_code")
        .or_else(|| body.pointer("/bounce/code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let why = Why::from_reply(
        lookup(CATEGORIES, Some(category)),
        str_at(&body, "/bounce/status"),
        code,
        str_at(&body, "/response").or_else(|| str_at(&body, "/message")),
    );
    let e = event(NAME, email, t, body, id);
    Some(complete(e, (campaign, subscriber), created_at, why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::testing::{GENERIC_REPLY, fixture};
    use serde_json::json;

    #[test]
    fn categories_row_by_row() {
        let rows = [
            ("recipient", Reason::UserUnknown),
            ("envelope", Reason::UserUnknown),
            ("capacity", Reason::MailboxFull),
            ("block", Reason::Blocked),
            ("blacklist", Reason::Blocked),
            ("spam", Reason::SpamDetected),
            ("virus", Reason::VirusDetected),
            ("dmarc", Reason::AuthFailure),
            ("auth", Reason::SecurityError),
            ("config", Reason::SecurityError),
            ("sender", Reason::Rejected),
            ("policy", Reason::PolicyViolation),
            ("message", Reason::ContentError),
            ("rate", Reason::Speeding),
            ("network", Reason::NetworkError),
            ("protocol", Reason::SyntaxError),
            ("greylist", Reason::OnHold),
            ("other", Reason::OnHold),
        ];
        assert_eq!(rows.len(), CATEGORIES.len(), "a row is untested");
        for (category, want) in rows {
            let body = json!({"email_id": "e", "recipient": "a@example.com",
                "message": GENERIC_REPLY, "response": GENERIC_REPLY, "response_code": 550,
                "headers": {"From": "news@example.com"},
                "bounce": {"action": "reject", "message": "Unknown Issue", "category": category,
                    "code": 550, "status": "5.0.0", "line": 1},
                "bounced_at": "2026-01-02T03:04:05.000Z"});
            let e = event_of(body, "id".into()).unwrap();
            assert_eq!(e.reason, Some(want), "{category}");
            assert_eq!(e.meta["reason"], want.as_str(), "{category}");
        }
    }

    #[test]
    fn a_full_bounce_carries_reason_status_and_diagnostic() {
        let vars = [
            ("ID", "ev"),
            ("EMAIL1", "a@example.net"),
            ("CAMPAIGN", "2f1d7c4e-3a5b-4c6d-8e9f-0a1b2c3d4e5f"),
        ];
        let e = event_of(fixture("forwardemail-bounce.json", &vars), "id".into()).unwrap();
        assert_eq!(e.reason, Some(Reason::UserUnknown));
        assert_eq!(e.meta["reason"], "userunknown");
        assert_eq!(e.meta["status"], "5.1.1");
        assert_eq!(
            e.meta["diagnostic"],
            "550 5.1.1 The email account that you tried to reach does not exist."
        );
        assert_eq!(e.meta["bounce"]["category"], "recipient");
    }
}
