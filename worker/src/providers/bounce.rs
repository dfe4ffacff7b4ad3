//! The `BounceEvent` of one provider event.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::reason::Why;
use crate::event::{BounceEvent, BounceType};
use crate::evidence::Evidence;

/// Builds an event with the provider as `source`. `meta` is the provider's own event (or
/// what the adapter made of it): it is kept as the bounce's evidence as it is now, before
/// the adapter adds its findings to it.
pub fn event(
    source: &str,
    email: String,
    bounce_type: BounceType,
    meta: Value,
    event_id: String,
) -> BounceEvent {
    BounceEvent {
        evidence: Some(Evidence::json(&meta)),
        request_digest: None,
        email: Some(email),
        subscriber_uuid: None,
        campaign_uuid: None,
        bounce_type,
        source: source.to_owned(),
        meta: if meta.is_object() {
            meta
        } else {
            serde_json::json!({ "payload": meta })
        },
        created_at: None,
        event_id,
        reason: None,
    }
}

/// `e` ([`event`]) completed with what the adapter read: listmonk's campaign and subscriber,
/// when it happened, and why it bounced (added to `meta` after the evidence was kept).
pub fn complete(
    mut e: BounceEvent,
    (campaign, subscriber): (Option<Uuid>, Option<Uuid>),
    created_at: Option<DateTime<Utc>>,
    why: Why,
) -> BounceEvent {
    e.campaign_uuid = campaign;
    e.subscriber_uuid = subscriber;
    e.created_at = created_at;
    why.apply(&mut e);
    e
}
