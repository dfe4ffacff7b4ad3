//! Mailjet's event webhooks (no signature: Basic credentials or a token in the webhook
//! URL), one event or a grouped array: `bounce` (`hard_bounce`), `blocked`, `spam`.

use bounceops_api::TokenAuthProvider;
use serde_json::Value;

use super::ConfigIssue;
use super::common::{
    TokenAuthWebhook, campaign_in_text, content_id, event, recipient, str_at, time,
};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "mailjet";

/// The Mailjet webhook, enabled by `spec`.
pub fn load(
    spec: &TokenAuthProvider,
    secrets: &SecretsDir,
) -> Result<Option<TokenAuthWebhook>, ConfigIssue> {
    TokenAuthWebhook::load(NAME, spec, secrets, event_of)
}

pub fn event_of(item: Value) -> Option<BounceEvent> {
    let kind = str_at(&item, "/event")?;
    let t = match kind {
        "bounce" => {
            if item.get("hard_bounce").and_then(Value::as_bool) == Some(true) {
                BounceType::Hard
            } else {
                BounceType::Soft
            }
        }
        // Mailjet refused to send: the address is known bad (or was complained about).
        "blocked" => BounceType::Hard,
        "spam" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&item, "/email"))?;
    let id = match item.get("MessageID").or_else(|| item.get("Message_GUID")) {
        Some(Value::Number(n)) => format!("{n}:{kind}:{email}"),
        Some(Value::String(s)) => format!("{s}:{kind}:{email}"),
        _ => content_id(&item),
    };
    // Payload is the X-MJ-EventPayload header, CustomID the X-MJ-CustomID one.
    let campaign = campaign_in_text(str_at(&item, "/Payload"))
        .or_else(|| campaign_in_text(str_at(&item, "/CustomID")));
    let created_at = time(item.get("time"));
    let mut e = event(NAME, email, t, item, id);
    e.campaign_uuid = campaign;
    e.created_at = created_at;
    Some(e)
}
