//! Forward Email's bounce webhook: `X-Webhook-Signature` is the hex HMAC-SHA256 of the raw
//! body with the account's webhook key.

use bounceops_api::ForwardemailProvider;
use futures::future::BoxFuture;
use serde_json::Value;

use super::common::{
    Reason, Why, campaign_in, event, hex_matches, hmac_sha256, json_object, lookup, recipient,
    sha256_hex, str_at, subscriber_in, time,
};
use super::{
    Admitted, ConfigIssue, Context, Head, Incoming, Provider, Received, Rejection, required_secret,
};
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

pub struct Forwardemail {
    key: Vec<u8>,
}

impl Forwardemail {
    pub fn load(
        spec: &ForwardemailProvider,
        secrets: &SecretsDir,
    ) -> Result<Option<Forwardemail>, ConfigIssue> {
        if !spec.enabled {
            return Ok(None);
        }
        let key = required_secret(
            secrets,
            "forwardemail.keySecretRef",
            spec.key_secret_ref.as_ref(),
        )?;
        Ok(Some(Forwardemail {
            key: key.into_bytes(),
        }))
    }
}

impl Provider for Forwardemail {
    type Verified = ();

    fn name(&self) -> &'static str {
        NAME
    }

    fn admit(&self, head: &Head<'_>) -> Result<Admitted, Rejection> {
        match head.header("x-webhook-signature") {
            Some(_) => Ok(Admitted::BodyToVerify),
            None => Err(Rejection::Unauthorized(
                "missing X-Webhook-Signature header",
            )),
        }
    }

    fn verify<'a>(
        &'a self,
        req: &'a Incoming,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        let result = match req.header("x-webhook-signature") {
            None => Err(Rejection::Unauthorized(
                "missing X-Webhook-Signature header",
            )),
            Some(given) if hex_matches(&hmac_sha256(&self.key, &[&req.body]), given) => Ok(()),
            Some(_) => Err(Rejection::Unauthorized("signature does not match")),
        };
        Box::pin(std::future::ready(result))
    }

    fn parse(&self, req: &Incoming, _: ()) -> Result<Received, Rejection> {
        let body = json_object(&req.body)?;
        // Forward Email sends no event id; a retry repeats the body byte for byte.
        let id = format!("sha256:{}", sha256_hex(&req.body));
        Ok(Received::Events(event_of(body, id).into_iter().collect()))
    }
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
    let mut e = event(NAME, email, t, body, id);
    e.campaign_uuid = campaign;
    e.subscriber_uuid = subscriber;
    e.created_at = created_at;
    why.apply(&mut e);
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::testing::{GENERIC_REPLY, fixture};
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
