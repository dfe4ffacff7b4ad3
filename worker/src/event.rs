//! `BounceEvent`: one bounce as every input (webhook, provider, mailbox) hands it to the
//! store, and the `Outcome` the store reports back.

use bounceops_api::Action;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The classifier's, so that a bounce read from mail and one from a webhook are one type.
pub use bounce_classify::BounceType;

#[derive(Debug, Clone, PartialEq)]
pub struct BounceEvent {
    /// Lower-cased recipient address; used when no subscriber UUID is given.
    pub email: Option<String>,
    /// Takes precedence over `email` when present, as in listmonk.
    pub subscriber_uuid: Option<Uuid>,
    /// Unknown campaigns are stored as NULL, not refused.
    pub campaign_uuid: Option<Uuid>,
    pub bounce_type: BounceType,
    pub source: String,
    /// A JSON object kept with the bounce.
    pub meta: serde_json::Value,
    /// When the bounce happened; `None` means now.
    pub created_at: Option<DateTime<Utc>>,
    /// This event's identity, unique within its `source`: the provider's id, a digest of
    /// the mailbox message, the client's `Idempotency-Key`, or one made when the event was
    /// received. Claimed in the transaction that records the event, so no retry (the
    /// sender's, or the worker's own after a lost commit answer) records it twice.
    pub event_id: String,
    /// Why it bounced, in the classifier's vocabulary (docs/reasons.md), where known: from
    /// the bounce mail, or from the provider's own codes.
    pub reason: Option<bounce_classify::Reason>,
    /// What caused the event, kept with its bounce row (`crate::evidence`): the bounce
    /// mail, or the sender's JSON event.
    pub evidence: Option<crate::evidence::Evidence>,
    /// The SHA-256 of the request body, when `event_id` is the sender's `Idempotency-Key`:
    /// stored with the claim of the key, so that the key admits a retry of this request
    /// and no other (`Outcome::KeyReused`).
    pub request_digest: Option<[u8; 32]>,
}

/// What happened to one event. Every variant but `KeyReused` means the event is durably
/// handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A bounce row was inserted; `action` was applied to the subscriber.
    Recorded {
        bounce_id: i32,
        action: Option<Action>,
    },
    /// Not stored because the subscriber is blocklisted (listmonk's rule).
    Blocklisted,
    /// Not stored because the count is past the threshold; `action` may still apply.
    OverThreshold { action: Option<Action> },
    /// No such subscriber: kept in the worker's unmatched table.
    Unmatched,
    /// Its reason is ignored by `spec.rules.reasons`: kept in `bounceops.ignored`, neither
    /// counted nor acted upon.
    Ignored,
    /// The same event was recorded before.
    Duplicate,
    /// Recorded by an attempt whose commit answer was lost (the connection dropped after
    /// COMMIT); the worker checked that it is committed, but not what it did.
    Committed,
    /// Its `Idempotency-Key` was claimed by a request with another body: nothing is
    /// recorded, and the sender is told so (422).
    KeyReused,
    /// The database refuses one of its values, whatever is retried (a character that the
    /// database's encoding cannot hold): kept in `bounceops.dead_letters` under `id`,
    /// with the database's `reason`, so that the rest of its batch is recorded.
    DeadLettered { id: i64, reason: String },
}

impl Outcome {
    /// The value of the `outcome` label in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Recorded { .. } => "recorded",
            Outcome::Blocklisted => "blocklisted",
            Outcome::OverThreshold { .. } => "over_threshold",
            Outcome::Unmatched => "unmatched",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
            Outcome::Committed => "committed",
            Outcome::KeyReused => "key_reused",
            Outcome::DeadLettered { .. } => "dead_letter",
        }
    }

    pub fn action(&self) -> Option<Action> {
        match self {
            Outcome::Recorded { action, .. } | Outcome::OverThreshold { action } => *action,
            _ => None,
        }
    }
}

/// An identity for an event whose sender gave none: unique, so it only guards against the
/// worker's own retries (a sender's retry of such an event is a new event).
pub fn received_id() -> String {
    format!("{RECEIVED}{}", Uuid::new_v4())
}

const RECEIVED: &str = "received:";

/// Whether `event`'s identity was made by [`received_id`]: a fresh UUID that no sender
/// knows, so no sender's retry can carry it again. (An `Idempotency-Key` that happens to
/// look like one has its request digest, and is the sender's.)
pub fn has_received_id(event: &BounceEvent) -> bool {
    event.request_digest.is_none()
        && event
            .event_id
            .strip_prefix(RECEIVED)
            .is_some_and(|rest| Uuid::parse_str(rest).is_ok())
}
