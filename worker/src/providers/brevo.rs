//! Brevo's transactional webhooks (no signature: Basic credentials or a token in the
//! webhook URL): `hard_bounce`, `soft_bounce`, `blocked`, `invalid_email`, `spam`.

use bounceops_api::TokenAuthProvider;
use serde_json::Value;

use super::ConfigIssue;
use super::common::{
    TokenAuthWebhook, campaign_in, campaign_in_text, content_id, event, recipient, str_at, time,
};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "brevo";

/// The Brevo webhook, enabled by `spec`.
pub fn load(
    spec: &TokenAuthProvider,
    secrets: &SecretsDir,
) -> Result<Option<TokenAuthWebhook>, ConfigIssue> {
    TokenAuthWebhook::load(NAME, spec, secrets, event_of)
}

pub fn event_of(item: Value) -> Option<BounceEvent> {
    let kind = str_at(&item, "/event")?;
    let t = match kind {
        "hard_bounce" | "blocked" | "invalid_email" => BounceType::Hard,
        "soft_bounce" => BounceType::Soft,
        "spam" | "complaint" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&item, "/email"))?;
    // Brevo's `id` names the webhook, not the event: message id, event and recipient do.
    let id = match str_at(&item, "/message-id") {
        Some(m) => format!("{m}:{kind}:{email}"),
        None => content_id(&item),
    };
    let campaign = campaign_in_text(str_at(&item, "/X-Mailin-custom"))
        .or_else(|| campaign_in(item.get("headers")));
    let created_at = time(item.get("ts_event")).or_else(|| time(item.get("date")));
    let mut e = event(NAME, email, t, item, id);
    e.campaign_uuid = campaign;
    e.created_at = created_at;
    Some(e)
}
