//! SparkPost's webhooks (no signature: Basic credentials or a token configured on the
//! webhook): arrays of `{msys: {message_event: {...}}}` with `bounce`, `out_of_band`,
//! `spam_complaint` and `policy_rejection` events.

use bounceops_api::TokenAuthProvider;
use serde_json::Value;

use super::ConfigIssue;
use super::common::{
    TokenAuthWebhook, campaign_in, content_id, event, recipient, str_at, subscriber_in, time,
};
use crate::event::{BounceEvent, BounceType};
use crate::secrets::SecretsDir;

pub const NAME: &str = "sparkpost";

/// The SparkPost webhook, enabled by `spec`.
pub fn load(
    spec: &TokenAuthProvider,
    secrets: &SecretsDir,
) -> Result<Option<TokenAuthWebhook>, ConfigIssue> {
    TokenAuthWebhook::load(NAME, spec, secrets, item_of)
}

/// SparkPost wraps each event as `{msys: {message_event: {...}}}`.
fn item_of(mut item: Value) -> Option<BounceEvent> {
    event_of(item.pointer_mut("/msys/message_event").map(Value::take)?)
}

/// SparkPost's bounce classes (support.sparkpost.com "Bounce classification codes"): the
/// ones about the address itself are hard; auto-replies, subscribe requests and
/// challenge-responses are not failures at all.
fn class_type(class: Option<u32>, default: BounceType) -> Option<BounceType> {
    match class {
        Some(10 | 25 | 30 | 90) => Some(BounceType::Hard),
        Some(60 | 80 | 100) => None,
        Some(_) => Some(BounceType::Soft),
        None => Some(default),
    }
}

pub fn event_of(ev: Value) -> Option<BounceEvent> {
    let class = match ev.get("bounce_class") {
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    };
    let t = match str_at(&ev, "/type")? {
        "bounce" | "out_of_band" => class_type(class, BounceType::Soft)?,
        "policy_rejection" => class_type(class, BounceType::Hard)?,
        "spam_complaint" => BounceType::Complaint,
        _ => return None,
    };
    let email = recipient(str_at(&ev, "/rcpt_to").or_else(|| str_at(&ev, "/raw_rcpt_to")))?;
    let id = str_at(&ev, "/event_id")
        .map(str::to_owned)
        .unwrap_or_else(|| content_id(&ev));
    let campaign = campaign_in(ev.get("rcpt_meta"));
    let subscriber = subscriber_in(ev.get("rcpt_meta"));
    let created_at = time(ev.get("timestamp"));
    let mut e = event(NAME, email, t, ev, id);
    e.campaign_uuid = campaign;
    e.subscriber_uuid = subscriber;
    e.created_at = created_at;
    Some(e)
}
